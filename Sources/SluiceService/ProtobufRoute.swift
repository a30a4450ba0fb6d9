import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceCluster
import SluiceWire

/// Builds `GRPCMethod`s from handlers written against SluiceAPI message types, so no
/// service touches bytes: requests are decoded here (bad protobuf, or a string field with a
/// NUL byte or invalid UTF-8, ends the call with INVALID_ARGUMENT naming the message and
/// the field) and responses encoded here. A `BrokerError` or `ControllerError` a handler
/// throws ends its call with the error's status (`BrokerError+GRPCStatus.swift`,
/// `ControllerError+GRPCStatus.swift`): services call the broker with a plain `try`.
enum ProtobufRoute {
    static func unary<Request: ProtobufMessage, Response: ProtobufMessage>(
        _ path: String, _ handler: @escaping @Sendable (Request, ServerCallContext) async throws -> Response
    ) -> GRPCMethod {
        .unary(path) { bytes, context in
            try await answeringBrokerErrors { try await handler(try decode(bytes, path: path), context).protobufBytes() }
        }
    }

    static func serverStreaming<Request: ProtobufMessage, Response: ProtobufMessage>(
        _ path: String,
        _ handler: @escaping @Sendable (Request, ResponseWriter<Response>, ServerCallContext) async throws -> Void
    ) -> GRPCMethod {
        .serverStreaming(path) { bytes, writer, context in
            try await answeringBrokerErrors { try await handler(try decode(bytes, path: path), ResponseWriter(writer), context) }
        }
    }

    static func clientStreaming<Request: ProtobufMessage, Response: ProtobufMessage>(
        _ path: String, _ handler: @escaping @Sendable (RequestStream<Request>, ServerCallContext) async throws -> Response
    ) -> GRPCMethod {
        .clientStreaming(path) { requests, context in
            try await answeringBrokerErrors { try await handler(RequestStream(requests, path: path), context).protobufBytes() }
        }
    }

    static func bidirectional<Request: ProtobufMessage, Response: ProtobufMessage>(
        _ path: String,
        _ handler: @escaping @Sendable (RequestStream<Request>, ResponseWriter<Response>, ServerCallContext) async throws -> Void
    ) -> GRPCMethod {
        .bidirectional(path) { requests, writer, context in
            try await answeringBrokerErrors { try await handler(RequestStream(requests, path: path), ResponseWriter(writer), context) }
        }
    }

    /// Runs a handler, turning a broker or controller error it throws into its status; every
    /// other error passes as it is (a `GRPCStatus` is sent, anything else is INTERNAL).
    private static func answeringBrokerErrors<Result>(_ handler: () async throws -> Result) async throws -> Result {
        do {
            return try await handler()
        } catch let error as BrokerError {
            throw error.grpcStatus
        } catch let error as ControllerError {
            throw error.grpcStatus
        }
    }

    static func decode<Message: ProtobufMessage>(_ bytes: ByteBuffer, path: String) throws(GRPCStatus) -> Message {
        do {
            return try Message(protobuf: bytes)
        } catch {
            // The one mapping of SluiceAPI's decoding errors: both kinds are the client's input.
            let verdict = error.refusedString == nil ? "is not valid protobuf" : "is refused"
            throw GRPCStatus(.invalidArgument, "request to \(path) \(verdict): \(error)")
        }
    }

    /// Requests of a streaming call, decoded as they arrive.
    struct RequestStream<Request: ProtobufMessage>: AsyncSequence, Sendable {
        typealias Element = Request
        private let raw: GRPCRequestStream
        private let path: String

        init(_ raw: GRPCRequestStream, path: String) {
            self.raw = raw
            self.path = path
        }

        struct AsyncIterator: AsyncIteratorProtocol {
            var raw: GRPCRequestStream.AsyncIterator
            let path: String

            mutating func next() async throws -> Request? {
                guard let bytes = try await raw.next() else { return nil }
                return try ProtobufRoute.decode(bytes, path: path)
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(raw: raw.makeAsyncIterator(), path: path) }
    }

    /// Responses of a streaming call, encoded as they are written.
    struct ResponseWriter<Response: ProtobufMessage>: Sendable {
        private let raw: GRPCResponseWriter

        init(_ raw: GRPCResponseWriter) { self.raw = raw }

        /// Suspends while the peer's flow-control window or the send queue is full.
        func write(_ response: Response) async throws {
            try await raw.write(response.protobufBytes())
        }
    }
}
