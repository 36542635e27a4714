/*
 * TaskFlow test tooling: small REST endpoints that, in the official distribution, come from modules
 * Elastic does not publish on Maven Central, and that the official clients call:
 *
 *  - "GET /" and "HEAD /" (the "rest-root" module): the clients' info() and ping(). Answered with the
 *    same document shape, built from the running node's build information and cluster state.
 *  - "GET /_data_stream[/{name}]" (the "data-streams" module): the Python client's helpers.reindex()
 *    asks whether its target is a data stream. Without that module no data stream can exist, so the
 *    truthful answer is an empty list, or 404 for a concrete name.
 */
package taskflow.es;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.Strings;
import org.elasticsearch.common.bytes.BytesArray;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.IndexNotFoundException;
import org.elasticsearch.index.IndexVersion;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.function.Supplier;

public class TaskflowCompatPlugin extends Plugin implements ActionPlugin {

    private final AtomicReference<ClusterService> clusterService = new AtomicReference<>();

    @Override
    public Collection<?> createComponents(PluginServices services) {
        clusterService.set(services.clusterService());
        return List.of();
    }

    @Override
    public Collection<RestHandler> getRestHandlers(
        RestHandlersServices services,
        Supplier<DiscoveryNodes> nodesInCluster,
        Predicate<NodeFeature> clusterSupportsFeature
    ) {
        return List.of(new RootHandler(clusterService::get), new NoDataStreamsHandler());
    }

    /** Marks every query parameter as used: these handlers accept (and ignore) the usual options. */
    private static void consumeParams(RestRequest request) {
        for (String key : new ArrayList<>(request.params().keySet())) {
            request.param(key);
        }
    }

    static final class RootHandler extends BaseRestHandler {
        private final Supplier<ClusterService> clusterService;

        RootHandler(Supplier<ClusterService> clusterService) {
            this.clusterService = clusterService;
        }

        @Override
        public String getName() {
            return "taskflow_root_action";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            consumeParams(request);
            if (request.method() == RestRequest.Method.HEAD) {
                return channel -> channel.sendResponse(new RestResponse(RestStatus.OK, RestResponse.TEXT_CONTENT_TYPE, BytesArray.EMPTY));
            }
            return channel -> {
                ClusterService cs = clusterService.get();
                Build build = Build.current();
                XContentBuilder body = channel.newBuilder();
                body.startObject();
                body.field("name", cs.getNodeName());
                body.field("cluster_name", cs.getClusterName().value());
                body.field("cluster_uuid", cs.state().metadata().clusterUUID());
                body.startObject("version");
                body.field("number", build.qualifiedVersion());
                body.field("build_flavor", build.flavor());
                body.field("build_type", build.type().displayName());
                body.field("build_hash", build.hash());
                body.field("build_date", build.date());
                body.field("build_snapshot", build.isSnapshot());
                body.field("lucene_version", IndexVersion.current().luceneVersion().toString());
                body.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
                body.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
                body.endObject();
                body.field("tagline", "You Know, for Search");
                body.endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, body));
            };
        }

        @Override
        public boolean canTripCircuitBreaker() {
            return false;
        }
    }

    static final class NoDataStreamsHandler extends BaseRestHandler {
        @Override
        public String getName() {
            return "taskflow_no_data_streams_action";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/_data_stream"), new Route(RestRequest.Method.GET, "/_data_stream/{name}"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            String[] names = Strings.splitStringByCommaToArray(request.param("name"));
            consumeParams(request);
            for (String name : names) {
                if (name.equals("_all") == false && name.contains("*") == false) {
                    IndexNotFoundException missing = new IndexNotFoundException(name);
                    return channel -> channel.sendResponse(new RestResponse(channel, missing));
                }
            }
            return channel -> {
                XContentBuilder body = channel.newBuilder();
                body.startObject().startArray("data_streams").endArray().endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, body));
            };
        }

        @Override
        public boolean canTripCircuitBreaker() {
            return false;
        }
    }
}
