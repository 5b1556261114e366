import SystemSupport

/// The service's upkeep loop: idle instances reclaimed, provisioned ones replaced, logs flushed, old events
/// expired and old records pruned.
extension FunctionService {
    /// Every `maintenanceInterval`: reclaims idle instances, replaces provisioned ones that died, flushes logs;
    /// every minute, expires old events and prunes old records. Until `shutdown` begins.
    public func runMaintenance() async {
        var lastPrune = ContinuousClock.now
        while !stopping.isSet {
            try? await Task.sleep(for: options.maintenanceInterval)
            for name in functionNames {
                guard let d = try? deployment(name) else { continue }
                await logProvisioned(name, await d.pool.maintain())
            }
            await checkStateFilesystem()
            await log.flush()
            if ContinuousClock.now - lastPrune > .seconds(60) {
                lastPrune = .now
                do {
                    let expired = try await queue.expire()
                    if expired > 0 { logger.notice("\(expired) async events expired to the dead letters") }
                    try await db.prune(olderThan: options.policy.retention)
                    await log.recount()
                } catch { logger.error("upkeep: \(error)") }
            }
        }
    }
}

extension FunctionService {
    /// The state dir's filesystem now: logs pause below the reserve of free space (and resume above it).
    func checkStateFilesystem() async {
        guard let usage = FileSystem.usage(of: store.root) else { return }
        metrics.setStateFilesystem(size: usage.size, free: usage.free)
        // A small filesystem keeps a tenth of itself back, a large one `freeSpaceReserve`.
        let reserve = min(options.logs.freeSpaceReserve, usage.size / 10)
        await log.setPaused(
            usage.free < reserve
                ? "\(usage.free) bytes free on the state dir's filesystem (\(store.root)), below the reserve of \(reserve)"
                : nil)
    }

    /// What `/healthz` says beside "ok": the state of the log store.
    public func health() async -> [String: String] {
        var out = ["status": "ok", "functions": "\(functionNames.count)"]
        if let paused = await log.paused { out["logs"] = "paused: \(paused)" }
        return out
    }
}
