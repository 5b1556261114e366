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
            await log.flush()
            if ContinuousClock.now - lastPrune > .seconds(60) {
                lastPrune = .now
                do {
                    let expired = try await queue.expire()
                    if expired > 0 { logger.notice("\(expired) async events expired to the dead letters") }
                    try await db.prune(olderThan: options.policy.retention)
                } catch { logger.error("upkeep: \(error)") }
            }
        }
    }
}
