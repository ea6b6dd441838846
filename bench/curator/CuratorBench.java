// The Apache Curator peer of tenure-bench: the same scenarios with Curator's LeaderLatch (the
// recipe Flink's ZooKeeper HA uses), against the ZooKeeper server the harness started.
//
// Compiled by scripts/bench-setup against Debian's jars; run by tenure-bench as
//   java -cp target/bench/curator:<jars> CuratorBench <scenario> --connect HOST:PORT [options]
// Every result is one JSON object on one line of stdout:
//   {"scenario":"acquire","samples_ns":[...],"extra":{...}}
// Everything else (logs) goes to stderr. Timestamps are System.nanoTime() (CLOCK_MONOTONIC).
//
// Scenarios:
//   rtt       --n N                  checkExists("/") round trips on one client
//   acquire   --n N --warmup W       new LeaderLatch, start(), await() on an open client
//   handover  --n N --warmup W       two clients; leader close() until the standby's await() returns
//   crash     --n N --timeout-ms T   leader in a child JVM (busy: checkExists every 10 ms) killed
//             [--tick-ms 200 --phase-ms 100]   with SIGKILL at a moment aligned to the server's
//                                    expiry tick (see alignKill); time until the standby here
//                                    leads. Also prints "crash-kills" and "crash-grants": the
//                                    moments of each kill and grant (System.nanoTime()).
//   scale     --sizes 10,100,1000    N latches on distinct paths on one client, all started at once
//   child-leader --timeout-ms T --path P   (internal) the crash scenario's leader process

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.retry.ExponentialBackoffRetry;

public final class CuratorBench {
    private static final long SETTLE_MS = 20;

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            System.err.println("usage: CuratorBench <scenario> --connect HOST:PORT [options]");
            System.exit(2);
        }
        String scenario = argv[0];
        Map<String, String> opts = new HashMap<>();
        for (int i = 1; i + 1 < argv.length; i += 2) {
            opts.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        }
        String connect = opts.getOrDefault("connect", "127.0.0.1:2181");
        int n = Integer.parseInt(opts.getOrDefault("n", "20"));
        int warmup = Integer.parseInt(opts.getOrDefault("warmup", "5"));
        String root = opts.getOrDefault("root", "/bench-curator");
        switch (scenario) {
            case "rtt": rtt(connect, n, warmup); break;
            case "acquire": acquire(connect, root, n, warmup); break;
            case "handover": handover(connect, root, n, warmup); break;
            case "crash":
                crash(connect, root, n, Integer.parseInt(opts.getOrDefault("timeout-ms", "2000")),
                        Long.parseLong(opts.getOrDefault("tick-ms", "0")),
                        Long.parseLong(opts.getOrDefault("phase-ms", "0")));
                break;
            case "scale": scale(connect, root, opts.getOrDefault("sizes", "10,100,1000")); break;
            case "child-leader":
                childLeader(connect, opts.get("path"), Integer.parseInt(opts.getOrDefault("timeout-ms", "2000")));
                break;
            default:
                System.err.println("unknown scenario " + scenario);
                System.exit(2);
        }
        System.exit(0);
    }

    private static CuratorFramework client(String connect, int sessionTimeoutMs) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(
                connect, sessionTimeoutMs, 15000, new ExponentialBackoffRetry(100, 10));
        c.start();
        if (!c.blockUntilConnected(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("cannot connect to " + connect);
        }
        return c;
    }

    private static void emit(String scenario, List<Long> samples, Map<String, Object> extra) {
        StringBuilder sb = new StringBuilder();
        sb.append("{\"scenario\":\"").append(scenario).append("\",\"samples_ns\":[");
        for (int i = 0; i < samples.size(); i++) {
            if (i > 0) sb.append(',');
            sb.append(samples.get(i));
        }
        sb.append("],\"extra\":{");
        boolean first = true;
        for (Map.Entry<String, Object> e : extra.entrySet()) {
            if (!first) sb.append(',');
            first = false;
            sb.append('"').append(e.getKey()).append("\":");
            Object v = e.getValue();
            if (v instanceof Number) sb.append(v);
            else sb.append('"').append(String.valueOf(v).replace("\"", "'")).append('"');
        }
        sb.append("}}");
        System.out.println(sb);
        System.out.flush();
    }

    private static Map<String, Object> baseExtra() {
        Map<String, Object> m = new HashMap<>();
        m.put("java", System.getProperty("java.version"));
        m.put("curator", CuratorFramework.class.getPackage().getImplementationVersion() == null
                ? "5.4.0" : CuratorFramework.class.getPackage().getImplementationVersion());
        return m;
    }

    private static void rtt(String connect, int n, int warmup) throws Exception {
        try (CuratorFramework c = client(connect, 10000)) {
            List<Long> samples = new ArrayList<>();
            for (int i = 0; i < n + warmup; i++) {
                long t0 = System.nanoTime();
                c.checkExists().forPath("/");
                long t1 = System.nanoTime();
                if (i >= warmup) samples.add(t1 - t0);
            }
            emit("rtt", samples, baseExtra());
        }
    }

    private static void acquire(String connect, String root, int n, int warmup) throws Exception {
        try (CuratorFramework c = client(connect, 10000)) {
            String path = root + "/acquire";
            List<Long> samples = new ArrayList<>();
            for (int i = 0; i < n + warmup; i++) {
                LeaderLatch latch = new LeaderLatch(c, path, "p");
                long t0 = System.nanoTime();
                latch.start();
                latch.await();
                long t1 = System.nanoTime();
                latch.close();
                if (i >= warmup) samples.add(t1 - t0);
            }
            emit("acquire", samples, baseExtra());
        }
    }

    private static void waitChildren(CuratorFramework c, String path, int count) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            int have = c.checkExists().forPath(path) == null ? 0 : c.getChildren().forPath(path).size();
            if (have == count) break;
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(path + " has " + have + " children, expected " + count);
            }
            Thread.sleep(2);
        }
        // The standby sets its watch right after its node appears; let it.
        Thread.sleep(SETTLE_MS);
    }

    private static void handover(String connect, String root, int n, int warmup) throws Exception {
        try (CuratorFramework a = client(connect, 10000); CuratorFramework b = client(connect, 10000)) {
            String path = root + "/handover";
            List<Long> samples = new ArrayList<>();
            for (int i = 0; i < n + warmup; i++) {
                LeaderLatch leader = new LeaderLatch(a, path, "a");
                leader.start();
                leader.await();
                LeaderLatch standby = new LeaderLatch(b, path, "b");
                standby.start();
                waitChildren(a, path, 2);
                long t0 = System.nanoTime();
                leader.close();
                standby.await();
                long t1 = System.nanoTime();
                standby.close();
                waitChildren(a, path, 0);
                if (i >= warmup) samples.add(t1 - t0);
            }
            emit("handover", samples, baseExtra());
        }
    }

    /**
     * Waits until the moment M at which (M + timeout) lies phaseMs into a server tick of tickMs
     * (ZooKeeper rounds session expiry up to a multiple of its tick, in System.nanoTime() ms, which
     * is CLOCK_MONOTONIC like the harness's clock): every implementation's dead session then
     * expires the same ~(tick - phase) after its timeout. tickMs 0: no wait.
     */
    private static void alignKill(long timeoutMs, long tickMs, long phaseMs) throws InterruptedException {
        if (tickMs <= 0) return;
        long tick = tickMs * 1_000_000L;
        long want = Math.floorMod(phaseMs * 1_000_000L - timeoutMs * 1_000_000L, tick);
        long now = System.nanoTime();
        long target = now - Math.floorMod(now, tick) + want;
        while (target < now + 5_000_000L) target += tick;
        long sleepMs = (target - now) / 1_000_000L - 2;
        if (sleepMs > 0) Thread.sleep(sleepMs);
        while (System.nanoTime() < target) Thread.onSpinWait();
    }

    private static void crash(String connect, String root, int n, int timeoutMs, long tickMs, long phaseMs)
            throws Exception {
        String path = root + "/crash-" + timeoutMs;
        String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        String cp = System.getProperty("java.class.path");
        List<Long> samples = new ArrayList<>();
        List<Long> grants = new ArrayList<>();
        List<Long> kills = new ArrayList<>();
        long negotiated = -1;
        try (CuratorFramework b = client(connect, 10000)) {
            for (int i = 0; i < n; i++) {
                Process child = new ProcessBuilder(java, "-cp", cp, "CuratorBench", "child-leader",
                        "--connect", connect, "--path", path, "--timeout-ms", Integer.toString(timeoutMs))
                        .redirectError(ProcessBuilder.Redirect.INHERIT)
                        .start();
                BufferedReader out = new BufferedReader(
                        new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
                String line = out.readLine();
                if (line == null || !line.startsWith("LEADER")) {
                    child.destroyForcibly();
                    throw new IllegalStateException("the child leader did not lead: " + line);
                }
                negotiated = Long.parseLong(line.split(" ")[1]);
                LeaderLatch standby = new LeaderLatch(b, path, "standby");
                standby.start();
                waitChildren(b, path, 2);
                alignKill(negotiated, tickMs, phaseMs);
                long t0 = System.nanoTime();
                child.destroyForcibly(); // SIGKILL
                standby.await();
                long t1 = System.nanoTime();
                child.waitFor();
                standby.close();
                waitChildren(b, path, 0);
                samples.add(t1 - t0);
                grants.add(t1);
                kills.add(t0);
                System.err.println("curator crash " + timeoutMs + " ms: trial " + (i + 1) + "/" + n
                        + " " + (t1 - t0) / 1000000 + " ms");
            }
        }
        Map<String, Object> extra = baseExtra();
        extra.put("timeout_ms", timeoutMs);
        extra.put("negotiated_timeout_ms", negotiated);
        emit("crash", samples, extra);
        // When each standby led (System.nanoTime() = CLOCK_MONOTONIC), for the harness to match
        // with the moment the server expired the leader's session.
        emit("crash-grants", grants, new HashMap<>());
        emit("crash-kills", kills, new HashMap<>());
    }

    private static void childLeader(String connect, String path, int timeoutMs) throws Exception {
        CuratorFramework c = client(connect, timeoutMs);
        LeaderLatch latch = new LeaderLatch(c, path, "leader");
        latch.start();
        latch.await();
        int negotiated = c.getZookeeperClient().getZooKeeper().getSessionTimeout();
        System.out.println("LEADER " + negotiated);
        System.out.flush();
        // Busy leader: the session's last contact with the server is the moment of the kill.
        while (true) {
            c.checkExists().forPath(path);
            Thread.sleep(10);
        }
    }

    private static long rssBytes() {
        try {
            for (String l : Files.readAllLines(Paths.get("/proc/self/status"))) {
                if (l.startsWith("VmRSS:")) {
                    return Long.parseLong(l.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (Exception e) {
            // not Linux
        }
        return -1;
    }

    private static long heapUsed() {
        Runtime rt = Runtime.getRuntime();
        for (int i = 0; i < 3; i++) System.gc();
        return rt.totalMemory() - rt.freeMemory();
    }

    private static void scale(String connect, String root, String sizes) throws Exception {
        try (CuratorFramework c = client(connect, 10000)) {
            // Warm the code paths once.
            for (int i = 0; i < 20; i++) {
                LeaderLatch l = new LeaderLatch(c, root + "/scale-warmup/j" + i, "p");
                l.start();
                l.await();
                l.close();
            }
            for (String s : sizes.split(",")) {
                int n = Integer.parseInt(s.trim());
                String base = root + "/scale-" + n;
                long rss0 = rssBytes();
                long heap0 = heapUsed();
                List<LeaderLatch> latches = new ArrayList<>(n);
                long[] grantedAt = new long[n];
                CountDownLatch all = new CountDownLatch(n);
                for (int i = 0; i < n; i++) {
                    LeaderLatch l = new LeaderLatch(c, base + "/job-" + i + "/latch", "p");
                    final int idx = i;
                    l.addListener(new LeaderLatchListener() {
                        @Override public void isLeader() {
                            grantedAt[idx] = System.nanoTime();
                            all.countDown();
                        }
                        @Override public void notLeader() { }
                    });
                    latches.add(l);
                }
                long t0 = System.nanoTime();
                for (LeaderLatch l : latches) l.start();
                if (!all.await(600, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("not all " + n + " latches were granted");
                }
                long t1 = System.nanoTime();
                long rss1 = rssBytes();
                long heap1 = heapUsed();
                List<Long> samples = new ArrayList<>(n);
                for (long g : grantedAt) samples.add(g - t0);
                Map<String, Object> extra = baseExtra();
                extra.put("size", n);
                extra.put("total_ns", t1 - t0);
                extra.put("rss_delta_bytes", rss1 - rss0);
                extra.put("heap_delta_bytes", heap1 - heap0);
                emit("scale", samples, extra);
                for (LeaderLatch l : latches) l.close();
                // Let the background deletes finish before the next size.
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
                while (System.nanoTime() < deadline) {
                    boolean any = false;
                    for (int i = 0; i < n; i += Math.max(1, n / 10)) {
                        String p = base + "/job-" + i + "/latch";
                        if (c.checkExists().forPath(p) != null && !c.getChildren().forPath(p).isEmpty()) {
                            any = true;
                            break;
                        }
                    }
                    if (!any) break;
                    Thread.sleep(50);
                }
                latches.clear();
            }
        }
    }

    private CuratorBench() {
    }
}
