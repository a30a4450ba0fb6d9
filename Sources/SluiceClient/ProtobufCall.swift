import NIOCore
import SluiceAPI
import SluiceWire

extension ProtobufMessage {
    /// The request's bytes, or INVALID_ARGUMENT (raised here, before anything is sent)
    /// when a string holds a NUL byte: protobuf-c would cut it there, and the broker
    /// would act on the shortened name, e.g. delete `orders` for "orders\0-staging".
    func checkedRequestBytes() throws(GRPCStatus) -> ByteBuffer {
        do {
            return try checkedProtobufBytes()
        } catch {
            throw GRPCStatus(.invalidArgument, "\(error)")
        }
    }
}

/// A streaming call with SluiceAPI messages: requests are encoded and responses decoded
/// here, so callers never handle bytes. A response that does not decode ends the
/// iteration with INTERNAL.
package struct ProtobufCall<Request: ProtobufMessage, Response: ProtobufMessage>: Sendable {
    package let call: GRPCClientCall
    package let path: String

    /// Opens a call of any kind on `connection`.
    package init(_ connection: GRPCClientConnection, path: String, metadata: GRPCMetadata = [:], timeout: Duration? = nil) async throws {
        call = try await connection.makeCall(path: path, metadata: metadata, timeout: timeout)
        self.path = path
    }

    /// Sends one request; suspends while HTTP/2 flow control holds the call back.
    package func send(_ request: Request) async throws {
        try await call.send(request.checkedRequestBytes())
    }

    /// Half-closes the call: no more requests.
    package func finishSending() async throws {
        try await call.finishSending()
    }

    /// Resets the stream; the server's handler is cancelled.
    package func cancel() {
        call.cancel()
    }

    /// The final status, once the call has ended.
    package func status() async -> GRPCStatus {
        await call.status()
    }

    package var responses: Responses { Responses(raw: call.responses, path: path) }

    package struct Responses: AsyncSequence, Sendable {
        package typealias Element = Response
        let raw: GRPCResponseStream
        let path: String

        package struct AsyncIterator: AsyncIteratorProtocol {
            var raw: GRPCResponseStream.AsyncIterator
            let path: String

            package mutating func next() async throws -> Response? {
                guard let bytes = try await raw.next() else { return nil }
                do {
                    return try Response(protobuf: bytes)
                } catch {
                    throw GRPCStatus(.internalError, "a response of \(path) is not valid protobuf: \(error)")
                }
            }
        }

        package func makeAsyncIterator() -> AsyncIterator { AsyncIterator(raw: raw.makeAsyncIterator(), path: path) }
    }
}
