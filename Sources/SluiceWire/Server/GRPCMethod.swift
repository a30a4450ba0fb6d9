public import NIOCore

/// One route of a `GRPCServer`: a path and the handler for one of the four RPC kinds.
///
/// A handler that throws `GRPCStatus` ends the call with it; any other error ends it with
/// INTERNAL (the error is logged, not sent). Returning ends it with OK. The handler's task is
/// cancelled when the client resets the stream or disconnects, or the deadline passes.
public struct GRPCMethod: Sendable {
    enum Kind: Sendable {
        case unary
        case serverStreaming
        case clientStreaming
        case bidirectional

        /// Unary calls are let to finish during a graceful shutdown; streaming ones are cut
        /// when the grace period ends.
        var isStreaming: Bool { self != .unary }
    }

    typealias Body = @Sendable (GRPCRequestStream, GRPCResponseWriter, ServerCallContext) async throws -> Void

    public let path: String
    let kind: Kind
    let body: Body

    public static func unary(
        _ path: String, _ handler: @escaping @Sendable (ByteBuffer, ServerCallContext) async throws -> ByteBuffer
    ) -> GRPCMethod {
        GRPCMethod(path: path, kind: .unary) { requests, writer, context in
            let request = try await requests.single()
            try await writer.write(try await handler(request, context))
        }
    }

    public static func serverStreaming(
        _ path: String,
        _ handler: @escaping @Sendable (ByteBuffer, GRPCResponseWriter, ServerCallContext) async throws -> Void
    ) -> GRPCMethod {
        GRPCMethod(path: path, kind: .serverStreaming) { requests, writer, context in
            try await handler(try await requests.single(), writer, context)
        }
    }

    public static func clientStreaming(
        _ path: String, _ handler: @escaping @Sendable (GRPCRequestStream, ServerCallContext) async throws -> ByteBuffer
    ) -> GRPCMethod {
        GRPCMethod(path: path, kind: .clientStreaming) { requests, writer, context in
            try await writer.write(try await handler(requests, context))
        }
    }

    public static func bidirectional(
        _ path: String,
        _ handler: @escaping @Sendable (GRPCRequestStream, GRPCResponseWriter, ServerCallContext) async throws -> Void
    ) -> GRPCMethod {
        GRPCMethod(path: path, kind: .bidirectional, body: handler)
    }
}
