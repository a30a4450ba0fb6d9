import NIOCore
import SluiceAPI
public import SluiceWire

/// gRPC server reflection, under both `grpc.reflection.v1.ServerReflection` and the older
/// `grpc.reflection.v1alpha.ServerReflection` (same messages, same wire format), so stock
/// tools (grpcurl, grpcio-reflection, Postman) can list the services and fetch their
/// descriptors without a copy of proto/.
///
/// Answers come from SluiceAPI's `ServiceDescriptors` (the committed descriptor set).
/// A file answer carries the file and every file it imports, transitively, so a client can
/// build a complete descriptor pool from one answer. Problems with one request are
/// answered in-stream with `error_response` (NOT_FOUND, INVALID_ARGUMENT) and the stream
/// goes on.
public struct ReflectionService: Sendable {
    public static let serviceNames = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]

    /// What list_services reports: the services this server actually serves.
    private let servedServices: [String]

    public init(servedServices: [String]) {
        self.servedServices = servedServices
    }

    public var methods: [GRPCMethod] {
        Self.serviceNames.map { service in
            ProtobufRoute.bidirectional("/\(service)/ServerReflectionInfo") {
                [self] (requests: ProtobufRoute.RequestStream<ServerReflectionRequest>, writer: ProtobufRoute.ResponseWriter<ServerReflectionResponse>, _) in
                for try await request in requests {
                    try await writer.write(answer(request))
                }
            }
        }
    }

    func answer(_ request: ServerReflectionRequest) -> ServerReflectionResponse {
        ServerReflectionResponse(validHost: request.host, originalRequest: request, messageResponse: messageResponse(request))
    }

    private func messageResponse(_ request: ServerReflectionRequest) -> ServerReflectionResponse.MessageResponse {
        switch request.messageRequest {
        case .listServices?:
            return .listServicesResponse(.init(service: servedServices.map { .init(name: $0) }))
        case .fileByFilename(let name)?:
            return files(startingAt: name) ?? notFound("file \(GRPCStatus.quoting(name)) is not known to this server")
        case .fileContainingSymbol(let symbol)?:
            guard let file = ServiceDescriptors.fileContaining(symbol: symbol) else {
                return notFound("symbol \(GRPCStatus.quoting(symbol)) is not known to this server")
            }
            return files(startingAt: file) ?? notFound("symbol \(GRPCStatus.quoting(symbol)) is not known to this server")
        case .fileContainingExtension(let request)?:
            // proto3 files declare no extensions.
            return notFound("no extension \(request.extensionNumber) of \(GRPCStatus.quoting(request.containingType))")
        case .allExtensionNumbersOfType(let type)?:
            guard ServiceDescriptors.fileContaining(symbol: type) != nil else {
                return notFound("type \(GRPCStatus.quoting(type)) is not known to this server")
            }
            return .allExtensionNumbersResponse(.init(baseTypeName: type, extensionNumber: []))
        case nil:
            return .errorResponse(.init(errorCode: Int32(GRPCStatus.Code.invalidArgument.rawValue),
                                        errorMessage: "the request names no question (message_request is empty)"))
        }
    }

    private func files(startingAt name: String) -> ServerReflectionResponse.MessageResponse? {
        let names = ServiceDescriptors.fileWithDependencies(named: name)
        guard !names.isEmpty else { return nil }
        let descriptors = names.compactMap { ServiceDescriptors.fileDescriptor(named: $0) }.map { ByteBuffer(bytes: $0) }
        return .fileDescriptorResponse(.init(fileDescriptorProto: descriptors))
    }

    private func notFound(_ message: String) -> ServerReflectionResponse.MessageResponse {
        .errorResponse(.init(errorCode: Int32(GRPCStatus.Code.notFound.rawValue), errorMessage: message))
    }
}
