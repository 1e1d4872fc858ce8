// Calendar arithmetic on day numbers (days since 1970-01-01, UTC), without Foundation.
// Algorithms from Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms".

enum CivilTime {
    static let microsecondsPerDay: Int64 = 86_400_000_000
    static let microsecondsPerHour: Int64 = 3_600_000_000

    /// Floor division (rounds towards negative infinity).
    @inline(__always)
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// The day number of the day containing `microseconds` since the epoch.
    @inline(__always)
    static func day(ofMicroseconds microseconds: Int64) -> Int64 {
        floorDiv(microseconds, microsecondsPerDay)
    }

    /// (year, month 1–12, day 1–31) of a day number.
    static func civil(fromDays days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (y, Int(m), Int(d))
    }

    /// Day of the week of a day number: 0 = Monday … 6 = Sunday (1970-01-01 was a Thursday).
    @inline(__always)
    static func weekday(ofDay day: Int64) -> Int {
        let r = (day + 3) % 7
        return Int(r < 0 ? r + 7 : r)
    }
}
