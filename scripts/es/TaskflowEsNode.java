/*
 * TaskFlow test tooling: a minimal launcher for a single local Elasticsearch node.
 *
 * The official distribution starts the server through its CLI tool (not published on Maven Central),
 * which serialises the node settings to the server's bootstrap class over stdin. This launcher instead
 * drives the public server API directly:
 *
 *   1. read <config>/elasticsearch.yml into an Environment (path.home points at the install dir,
 *      which holds lib/ and modules/ laid out like a distribution),
 *   2. configure ES logging from <config>/log4j2.properties,
 *   3. load the module bundles (modules/transport-netty4, which provides HTTP + transport),
 *   4. construct and start a Node, then park a non-daemon thread until the JVM is asked to stop;
 *      a shutdown hook closes the node cleanly on SIGTERM.
 *
 * It is only used by scripts/es/start; it never runs in production.
 */

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.elasticsearch.cluster.ClusterName;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginBundle;
import org.elasticsearch.plugins.PluginsLoader;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public final class TaskflowEsNode {

    private static final CountDownLatch STOPPED = new CountDownLatch(1);
    private static volatile Node node;

    private TaskflowEsNode() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: TaskflowEsNode <path.home> <config dir>");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath().normalize();
        Path configDir = Path.of(args[1]).toAbsolutePath().normalize();

        try {
            // Install ES's logging bridge before anything (e.g. the YAML parser) asks for a logger.
            LogConfigurator.configureESLogging();
            LogConfigurator.registerErrorListener();
            Settings initial = Settings.builder().put(Environment.PATH_HOME_SETTING.getKey(), home.toString()).build();
            Environment env = InternalSettingsPreparer.prepareEnvironment(initial, Map.of(), configDir, () -> "taskflow-es");
            LogConfigurator.setClusterName(ClusterName.CLUSTER_NAME_SETTING.get(env.settings()).value());
            LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
            LogConfigurator.configure(env, true);
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1);
        }

        Logger logger = LogManager.getLogger(TaskflowEsNode.class);
        try {
            start(home, configDir, logger);
        } catch (Throwable t) {
            logger.error("failed to start the node", t);
            System.err.flush();
            Runtime.getRuntime().halt(1);
        }
    }

    private static void start(Path home, Path configDir, Logger logger) throws Exception {
        // Re-read the environment now that logging is configured (prepareEnvironment is cheap and pure).
        Settings initial = Settings.builder().put(Environment.PATH_HOME_SETTING.getKey(), home.toString()).build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(initial, Map.of(), configDir, () -> "taskflow-es");
        Files.createDirectories(env.tmpDir());
        env.validateTmpDir();

        Thread.setDefaultUncaughtExceptionHandler((thread, e) -> {
            logger.error("uncaught exception in thread [" + thread.getName() + "]", e);
            if (e instanceof Error) {
                // Same policy as the real server: an Error leaves the JVM in an unknown state.
                Runtime.getRuntime().halt(1);
            }
        });

        Set<PluginBundle> modules = PluginsLoader.loadModulesBundles(env.modulesDir(), false);
        Set<PluginBundle> plugins = PluginsLoader.loadPluginsBundles(env.pluginsDir(), false);
        logger.info("loading modules {} and plugins {}",
            modules.stream().map(b -> b.pluginDescriptor().getName()).sorted().toList(),
            plugins.stream().map(b -> b.pluginDescriptor().getName()).sorted().toList());
        PluginsLoader pluginsLoader = PluginsLoader.createPluginsLoader(modules, plugins, Map.of());

        Runtime.getRuntime().addShutdownHook(new Thread(TaskflowEsNode::shutdown, "taskflow-es-shutdown"));

        Node n = new Node(env, pluginsLoader);
        node = n;
        n.start();

        Thread keepAlive = new Thread(() -> {
            try {
                STOPPED.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "taskflow-es-keepalive");
        keepAlive.setDaemon(false);
        keepAlive.start();
        logger.info("taskflow-es node started");
    }

    private static void shutdown() {
        Node n = node;
        try {
            if (n != null) {
                n.prepareForClose();
                n.close();
                if (n.awaitClose(20, TimeUnit.SECONDS) == false) {
                    LogManager.getLogger(TaskflowEsNode.class).warn("node did not stop within 20 seconds");
                }
            }
        } catch (Exception e) {
            LogManager.getLogger(TaskflowEsNode.class).warn("error while stopping the node", e);
        } finally {
            STOPPED.countDown();
            LogManager.shutdown();
        }
    }
}
