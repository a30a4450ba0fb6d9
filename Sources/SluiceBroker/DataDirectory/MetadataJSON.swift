#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A metadata file of the data directory as JSON (`topics.json`, `producers.json`): one
/// UTF-8 document, pretty-printed with sorted keys (so it diffs well and an operator can
/// read it) and a final newline, whose top-level `format` says which layout the rest has.
protocol MetadataDocument: Codable {
    var format: Int { get }
}

enum MetadataJSON {
    /// `what` names the file's content in the message of the (impossible) failure: the
    /// documents hold only strings, integers and string maps, which always encode.
    static func encode(_ document: some MetadataDocument, what: String) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            var bytes = Array(try encoder.encode(document))
            bytes.append(UInt8(ascii: "\n"))
            return bytes
        } catch {
            preconditionFailure("\(what) failed to encode: \(error)")
        }
    }

    /// The document in `bytes`, refused as `.metadataCorrupt` when it is not JSON of that
    /// shape or has another format than `format`. `path` and `what` are for messages.
    static func decode<Document: MetadataDocument>(
        _ type: Document.Type, from bytes: [UInt8], path: String, what: String, format: Int
    ) throws(BrokerError) -> Document {
        let document: Document
        do {
            document = try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw BrokerError(.metadataCorrupt, "\(path) is not valid \(what): \(error)")
        }
        guard document.format == format else {
            throw BrokerError(.metadataCorrupt, "\(path) has format \(document.format); this broker reads format \(format)")
        }
        return document
    }
}
