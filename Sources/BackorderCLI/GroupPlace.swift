import ArgumentParser
import Consumers
import EventStore
import JetStreamStore

/// Where `consume` and `groups` find a store's consumer groups: files under the data
/// directory for the embedded log (`consumers/`, or a tenant's own groups under
/// `tenant-consumers/`), or the cluster store's key-value bucket (docs/CONSUMERS.md, "On a
/// cluster"; a tenant's own groups under its keys there).
struct GroupPlace {
    let source: any EventSource
    private let cluster: JetStreamStore?
    private let tenant: String?
    private let root: String
    /// How `groups` names the groups it lists.
    let description: String

    /// Opens the store's events read-only and the place of its groups (`tenant`: that
    /// tenant's own groups, which `backorder serve` keeps for HTTP clients).
    static func open(_ data: DataOptions, tenant: String?) async throws -> GroupPlace {
        let scope = tenant.map { "tenant \($0)'s groups" } ?? "the store-wide groups"
        if let options = data.clusterOptions() {
            let store = try await JetStreamStore.open(options, readOnly: true)
            return GroupPlace(source: store.lanes, cluster: store, tenant: tenant, root: "", description: scope + " of stream \(store.streamName)")
        }
        let root = tenant.map { ConsumerGroup.tenantRoot(data: data.directory, tenant: $0) } ?? data.directory + "/consumers"
        return GroupPlace(source: try await data.openSource(), cluster: nil, tenant: tenant, root: root, description: scope + " in \(data.directory)")
    }

    /// The group `name`, made on first use.
    func group(_ name: String) async throws -> any GroupCoordinator {
        if let cluster {
            let tenant = self.tenant
            return try await JetStreamStore.onThread { try cluster.consumerGroup(named: name, tenant: tenant) }
        }
        return try ConsumerGroup(root: root, name: name, laneCount: source.partitionCount)
    }

    /// The groups that exist.
    func names() async throws -> [String] {
        if let cluster { return try await cluster.consumerGroupNames(tenant: tenant) }
        return ConsumerGroup.names(root: root)
    }
}
