import Bootstrap
import Synchronization

/// The async dispatcher: runs the durable queue's events (EventQueue) as each function's concurrency allows,
/// records their results (retried or dead-lettered by the queue's policy), and sleeps on a doorbell between.
extension FunctionService {
    /// Runs queued events as the functions' concurrency allows, until `shutdown` begins.
    public func runDispatcher() async {
        await withDiscardingTaskGroup { group in
            while !stopping.isSet {
                var started = 0
                for name in await queue.busyFunctions {
                    guard let d = try? deployment(name) else { continue }
                    let slots = await d.pool.reserve(Int.max)
                    let events = (try? await queue.claim(function: name, limit: slots)) ?? []
                    if events.count < slots { await d.pool.release(slots - events.count) }
                    for event in events {
                        group.addTask { await self.run(event, on: d) }
                    }
                    started += events.count
                }
                if started == 0 { await doorbell.wait(upTo: .milliseconds(100)) }
            }
        }
    }

    private func run(_ event: QueuedEvent, on d: Deployment) async {
        let outcome = await d.pool.run(.event(Event(checked: event.payload)), requestID: event.requestID, reserved: true)
        _ = await finish(event.function, d, outcome)
        let result = InvokeResult(outcome, log: nil)
        // An invocation cut short by a shutdown is left running: the next start queues it again.
        if stopping.isSet && !result.succeeded { return }
        do {
            try await queue.finish(event, result: result)
        } catch {
            logger.error(
                "could not record the result of \(event.requestID): \(error)", metadata: ["function": "\(event.function)"])
        }
        doorbell.ring()
    }
}

/// Wakes the dispatcher when there may be work: an event queued, an invocation finished.
final class Doorbell: Sendable {
    private let state = Mutex<(rung: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.rung = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns at the next ring (or at once if it rang since the last wait), or after `timeout`.
    func wait(upTo timeout: Duration) async {
        let timer = Task {
            // Cancelled (the bell rang first): no ring, or the next wait would return at once, and so on.
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self.ring()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.rung {
                    s.rung = false
                    return true
                }
                s.waiter = c
                return false
            }
            if now { c.resume() }
        }
        timer.cancel()
    }
}
