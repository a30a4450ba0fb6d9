import ArgumentParser
import SluiceAPI
import SluiceService

extension ArgumentHelp {
    /// A flag's help: what it sets, then why its default is what it is, in the words of
    /// the limits file that holds the default (`WireLimits`, `StorageLimits`,
    /// `BrokerLimits`), so the command line restates neither.
    static func limit(_ abstract: String, why: String) -> ArgumentHelp {
        ArgumentHelp(abstract, discussion: "Why the default: \(why).")
    }

    /// The help of a `sluice serve` setting that profiles set (docs/profiles.md): what it
    /// sets, its default and each profile's value where it differs, all read from
    /// `BrokerTuning`, then why the default is what it is.
    static func tuning<Value: Equatable>(
        _ abstract: String, _ setting: KeyPath<BrokerTuning, Value?>, shown: (Value) -> String, why: String
    ) -> ArgumentHelp {
        let standard = BrokerTuning.defaults[keyPath: setting]
        var values = ["default " + (standard.map(shown) ?? "none")]
        for profile in PerformanceProfile.allCases {
            if let value = BrokerTuning(profile: profile)[keyPath: setting], value != standard {
                values.append("\(profile): \(shown(value))")
            }
        }
        return limit("\(abstract) (\(values.joined(separator: "; "))).", why: why)
    }
}

/// A byte count as help text shows it: "16 KiB", "4 MiB", or the count itself.
func shownBytes(_ bytes: Int) -> String {
    for (unit, name) in [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] where bytes >= unit && bytes % unit == 0 {
        return "\(bytes / unit) \(name)"
    }
    return "\(bytes)"
}

/// A duration as help text shows it, in milliseconds.
func shownMilliseconds(_ duration: Duration) -> String {
    let milliseconds = duration.inSeconds * 1000
    return milliseconds == milliseconds.rounded() ? "\(Int64(milliseconds)) ms" : "\(milliseconds) ms"
}
