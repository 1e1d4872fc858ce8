// Word lists the generator draws names, places and notes from.
//
// Every entry is stored JSON-escaped (without the surrounding quotes) as UTF-8 bytes, built once,
// so the hot path only copies bytes. A few entries deliberately contain quotes, backslashes,
// commas, apostrophes, a newline and non-ASCII text (including a 4-byte UTF-8 sequence) to
// exercise the consumers' JSON and text handling.

/// Escapes `text` for use inside a JSON string literal (without the surrounding quotes).
func jsonEscaped(_ text: String) -> [UInt8] {
    let hex: [UInt8] = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(text.utf8.count + 8)
    for byte in text.utf8 {
        switch byte {
        case 0x22: out.append(0x5C); out.append(0x22)  // "
        case 0x5C: out.append(0x5C); out.append(0x5C)  // \
        case 0x0A: out.append(0x5C); out.append(0x6E)  // \n
        case 0x0D: out.append(0x5C); out.append(0x72)  // \r
        case 0x09: out.append(0x5C); out.append(0x74)  // \t
        case 0x08: out.append(0x5C); out.append(0x62)  // \b
        case 0x0C: out.append(0x5C); out.append(0x66)  // \f
        case 0..<0x20:
            out.append(contentsOf: Array("\\u00".utf8))
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0xF)])
        default:
            out.append(byte)
        }
    }
    return out
}

/// A country of a sales region: ISO code, phone prefix and a few cities.
struct Country: Sendable {
    let code: [UInt8]
    let phonePrefix: [UInt8]
    let cities: [[UInt8]]
}

/// A sales region: its name, its countries, and its share of the customers (weight).
struct Region: Sendable {
    let name: [UInt8]
    let weight: Int
    let countries: [Country]
}

/// A garment kind: display name, SKU prefix and a base price in cents.
struct Garment: Sendable {
    let name: [UInt8]
    let code: [UInt8]
    let basePriceCents: Int
}

/// Immutable lookup tables shared by all generators.
final class Tables: Sendable {
    static let shared = Tables()

    let surnames: [[UInt8]]
    let trades: [[UInt8]]
    let legalForms: [[UInt8]]
    let oddCustomerNames: [[UInt8]]
    let streets: [[UInt8]]
    let regions: [Region]
    let regionWeightTotal: Int
    let productLines: [[UInt8]]
    let materials: [[UInt8]]
    let garments: [Garment]
    let oddProductNames: [[UInt8]]
    let reportNotes: [[UInt8]]
    let deliveryNotes: [[UInt8]]
    let amendNotes: [[UInt8]]
    let refundReasons: [[UInt8]]
    let closeReasons: [[UInt8]]
    let deleteReasons: [[UInt8]]
    /// `sizeLabels[i]` is the quoted JSON string of size i (S, M, L, XL, XXL, XXXL).
    let sizeLabels: [[UInt8]]
    /// Relative popularity of each size.
    let sizeWeights: [Int]
    /// `sizeLists[mask]` is the JSON array of the sizes in `mask` (bit i = size i), in order.
    let sizeLists: [[UInt8]]
    /// `actors[i]` is the quoted JSON string `"u001"` … `"u040"`.
    let actors: [[UInt8]]

    static let actorCount = 40
    static let sizeCount = 6

    private init() {
        func list(_ items: [String]) -> [[UInt8]] { items.map(jsonEscaped) }

        surnames = list([
            "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
            "Hoffmann", "Schäfer", "Dubois", "Martin", "Bernard", "Lefèvre", "Moreau", "Rossi",
            "Russo", "Ferrari", "Esposito", "Bianchi", "García", "Fernández", "López", "Martínez",
            "Silva", "Santos", "Ferreira", "Jansen", "de Vries", "Van den Berg", "Peeters",
            "Janssens", "Andersson", "Johansson", "Nielsen", "Hansen", "Virtanen", "Kowalski",
            "Nowak", "Novák", "Horváth", "Smith", "Jones", "Taylor", "Brown", "Williams",
            "Murphy", "Kelly", "O'Connor", "Walsh", "Łukasiewicz", "Søndergaard",
        ])
        trades = list([
            "Sport", "Sports", "Fashion", "Outdoor", "Textil", "Workwear", "Teamwear", "Moda",
            "Mode", "Running", "Bike & Ski", "Kids", "Uniforms", "Trading", "Schuh & Sport",
            "Athletics", "Club Supplies",
        ])
        legalForms = list([
            "GmbH", "AG", "KG", "Ltd", "Ltd.", "SARL", "SAS", "B.V.", "N.V.", "AB", "ApS", "AS",
            "Oy", "S.L.", "S.A.", "S.r.l.", "S.p.A.", "Sp. z o.o.", "s.r.o.", "Kft.", "& Co.",
            "e.K.",
        ])
        oddCustomerNames = list([
            "O'Brien & Sons, \"Ltd\"",
            "\"Top Team\" Sportswear",
            "Smith, Jones & Partners",
            "Back\\Slash Textiles",
            "Ünal Moda – Tekstil",
            "Wiśniewski & Co. „Sport“",
            "🏃 Run Shop Zürich",
            "L'Atelier du Sport, S.A.R.L.",
        ])
        streets = list([
            "Hauptstraße", "Bahnhofstraße", "Rue de la République", "Via Roma", "Calle Mayor",
            "Rua Augusta", "Kerkstraat", "Storgatan", "High Street", "Station Road",
            "Main Street", "ulica Długa", "Váci utca", "Market Square", "Industriestraße",
            "Avenue des Champs-Élysées", "Gewerbepark", "Via Garibaldi",
        ])

        func country(_ code: String, _ prefix: String, _ cities: [String]) -> Country {
            Country(code: jsonEscaped(code), phonePrefix: jsonEscaped(prefix), cities: list(cities))
        }
        regions = [
            Region(name: jsonEscaped("DACH"), weight: 25, countries: [
                country("DE", "+49", ["Berlin", "München", "Hamburg", "Köln", "Frankfurt am Main", "Stuttgart"]),
                country("AT", "+43", ["Wien", "Graz", "Salzburg"]),
                country("CH", "+41", ["Zürich", "Genève", "Basel", "Bern"]),
            ]),
            Region(name: jsonEscaped("France"), weight: 14, countries: [
                country("FR", "+33", ["Paris", "Lyon", "Marseille", "Toulouse", "Lille", "Bordeaux"]),
            ]),
            Region(name: jsonEscaped("UK & Ireland"), weight: 14, countries: [
                country("GB", "+44", ["London", "Manchester", "Birmingham", "Glasgow", "Leeds"]),
                country("IE", "+353", ["Dublin", "Cork"]),
            ]),
            Region(name: jsonEscaped("Benelux"), weight: 10, countries: [
                country("NL", "+31", ["Amsterdam", "Rotterdam", "Utrecht"]),
                country("BE", "+32", ["Brussel", "Antwerpen", "Liège"]),
                country("LU", "+352", ["Luxembourg"]),
            ]),
            Region(name: jsonEscaped("Italy"), weight: 10, countries: [
                country("IT", "+39", ["Milano", "Roma", "Torino", "Napoli", "Bologna"]),
            ]),
            Region(name: jsonEscaped("Iberia"), weight: 10, countries: [
                country("ES", "+34", ["Madrid", "Barcelona", "València", "Sevilla"]),
                country("PT", "+351", ["Lisboa", "Porto"]),
            ]),
            Region(name: jsonEscaped("Nordics"), weight: 9, countries: [
                country("SE", "+46", ["Stockholm", "Göteborg", "Malmö"]),
                country("DK", "+45", ["København", "Aarhus"]),
                country("NO", "+47", ["Oslo", "Bergen"]),
                country("FI", "+358", ["Helsinki", "Tampere"]),
            ]),
            Region(name: jsonEscaped("Central Europe"), weight: 8, countries: [
                country("PL", "+48", ["Warszawa", "Kraków", "Gdańsk"]),
                country("CZ", "+420", ["Praha", "Brno"]),
                country("HU", "+36", ["Budapest"]),
            ]),
        ]
        regionWeightTotal = regions.reduce(0) { $0 + $1.weight }

        productLines = list([
            "Alpine", "Urban", "Coastal", "Trail", "Classic", "Heritage", "Pro", "Essential",
            "Storm", "Summit", "Metro", "Nordic", "Club", "Team",
        ])
        materials = list([
            "Cotton", "Merino", "Fleece", "Softshell", "Down", "Linen", "Denim", "Nylon",
            "Bamboo", "Recycled", "Organic Cotton", "Tech",
        ])
        func garment(_ name: String, _ code: String, _ cents: Int) -> Garment {
            Garment(name: jsonEscaped(name), code: jsonEscaped(code), basePriceCents: cents)
        }
        garments = [
            garment("T-Shirt", "TS", 1_999), garment("Polo", "PO", 2_999),
            garment("Hoodie", "HD", 4_999), garment("Sweater", "SW", 5_999),
            garment("Jacket", "JK", 11_999), garment("Parka", "PK", 17_999),
            garment("Vest", "VS", 6_999), garment("Shorts", "SH", 2_999),
            garment("Trousers", "TR", 6_999), garment("Leggings", "LG", 3_499),
            garment("Base Layer", "BL", 3_999), garment("Rain Jacket", "RJ", 8_999),
            garment("Tracksuit", "TK", 7_999), garment("Jersey", "JS", 4_499),
        ]
        oddProductNames = list([
            "Jacket \"Storm\" 2.0",
            "Kids' Rain Poncho, yellow",
            "T-Shirt «Été» 100% coton",
            "Socks 3/pack \\ assorted",
            "Trøje – Uld",
            "Windbreaker 'Gale' (unisex)",
        ])

        reportNotes = list([
            "customer needs it before Friday",
            "urgent – club event next week",
            "for the start of the season",
            "call before delivery",
            "same as last order",
            "customer will pick up in store",
            "reserve from the next shipment",
            "deliver to the back entrance\nring twice",
            "Kunde braucht es bis Monatsende",
            "client pressé, relancer mardi",
            "buyer wrote \"ASAP\"",
            "split delivery OK",
            "ref PO 4711/23, dept. \"Youth\"",
            "cliente habitual – prioridad alta",
        ])
        deliveryNotes = list([
            "partial shipment", "via DHL", "via UPS", "from central warehouse",
            "backorder batch", "remainder to follow", "picked up in store",
            "Lieferung über Zentrallager", "signed by \"J. Smith\"",
        ])
        amendNotes = list([
            "customer changed quantity", "corrected after phone call",
            "updated per email from buyer", "size changed by customer",
            "customer added some for a second shop",
        ])
        refundReasons = list([
            "customer cancelled", "product discontinued", "supplier cannot deliver",
            "customer found it elsewhere", "price disagreement", "duplicate order, refunded",
        ])
        closeReasons = list([
            "customer no longer needs the rest", "remaining quantity written off",
            "customer accepted partial delivery", "rest cancelled by phone",
        ])
        deleteReasons = list([
            "entered by mistake", "duplicate entry", "test record", "wrong customer",
        ])

        let sizeNames = ["S", "M", "L", "XL", "XXL", "XXXL"]
        sizeLabels = sizeNames.map { Array("\"\($0)\"".utf8) }
        sizeWeights = [10, 25, 25, 20, 12, 8]
        var lists: [[UInt8]] = [[]]
        for mask in 1..<(1 << sizeNames.count) {
            var bytes: [UInt8] = [0x5B]
            var first = true
            for i in 0..<sizeNames.count where mask & (1 << i) != 0 {
                if !first { bytes.append(0x2C) }
                first = false
                bytes.append(contentsOf: Array("\"\(sizeNames[i])\"".utf8))
            }
            bytes.append(0x5D)
            lists.append(bytes)
        }
        sizeLists = lists
        actors = (1...Tables.actorCount).map { n in
            Array("\"u\(n < 10 ? "00" : "0")\(n)\"".utf8)
        }
    }
}
