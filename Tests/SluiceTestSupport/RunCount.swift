import Foundation

/// How many rounds a randomised, fault or flood test runs: `variable` when set to a number,
/// else `soak` under SLUICE_SOAK (any value but empty or 0), else `ci`, the bounded count a
/// CI run can afford.
public func runCount(_ variable: String, ci: Int, soak: Int) -> Int {
    let environment = ProcessInfo.processInfo.environment
    if let count = environment[variable].flatMap(Int.init) { return count }
    return environment["SLUICE_SOAK"].map { $0 != "" && $0 != "0" } == true ? soak : ci
}
