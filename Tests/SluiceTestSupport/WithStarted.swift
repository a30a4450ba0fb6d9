/// Starts something (a broker, an etcd), opens a client on it, runs `body`, and always
/// closes the client and stops what was started, whether `body` returned or threw; if
/// the client cannot be opened, stops it and throws. The teardown order a test forgets.
public func withStarted<Server, Client, Result>(
    _ start: () async throws -> Server,
    open: (Server) async throws -> Client,
    close: (Client) async -> Void,
    stop: (Server) async -> Void,
    _ body: (Server, Client) async throws -> Result
) async throws -> Result {
    let server = try await start()
    let client: Client
    do {
        client = try await open(server)
    } catch {
        await stop(server)
        throw error
    }
    do {
        let result = try await body(server, client)
        await close(client)
        await stop(server)
        return result
    } catch {
        await close(client)
        await stop(server)
        throw error
    }
}
