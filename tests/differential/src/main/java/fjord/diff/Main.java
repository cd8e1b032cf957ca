package fjord.diff;

import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.Message;
import org.apache.kafka.common.protocol.ObjectSerializationCache;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Kafka side of Fjord's differential codec test.
 *
 * <pre>
 * versions [--spec DIR]
 * generate --spec DIR --seed N --count K --out FILE [--only NAME[,NAME..]] [--unknown-tags]
 * verify   --in FILE [--spec DIR --require-all] [--max-failures N]
 * roundtrip --in FILE   (same checks as verify; meant for this tool's own generate output)
 * </pre>
 *
 * Record format (big-endian): u16 name_length, name (UTF-8), i16 version, u32 body_length, body.
 */
public final class Main {

    private static final String DEFAULT_SPEC = "../shared/kafka-protocol";

    public static void main(String[] args) throws Exception {
        if (args.length == 0) usage("missing command");
        Map<String, String> opts = new HashMap<>();
        for (int i = 1; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) usage("unexpected argument " + a);
            String key = a.substring(2);
            if (key.equals("unknown-tags") || key.equals("require-all") || key.equals("quiet")) {
                opts.put(key, "true");
            } else {
                if (i + 1 >= args.length) usage("missing value for " + a);
                opts.put(key, args[++i]);
            }
        }
        int rc;
        switch (args[0]) {
            case "versions": rc = versions(opts); break;
            case "generate": rc = generate(opts); break;
            case "verify":
            case "roundtrip": rc = verify(opts, args[0]); break;
            case "selftest": rc = selftest(opts); break;
            case "dump": rc = dump(opts); break;
            default: usage("unknown command " + args[0]); rc = 2;
        }
        System.out.flush();
        System.exit(rc);
    }

    private static void usage(String why) {
        System.err.println("error: " + why);
        System.err.println("usage: versions [--spec DIR]");
        System.err.println("       generate --spec DIR --seed N --count K --out FILE [--only A,B] [--unknown-tags]");
        System.err.println("       verify --in FILE [--spec DIR --require-all] [--max-failures N]");
        System.err.println("       roundtrip --in FILE");
        System.err.println("       selftest [--seed N --count K]");
        System.err.println("       dump --in FILE [--only A,B] [--limit N]");
        System.exit(2);
    }

    // ---------------------------------------------------------------- message classes

    /** A spec together with Kafka's class for it. */
    record Handled(Spec.Message spec, Class<? extends Message> cls, short lo, short hi) { }

    @SuppressWarnings("unchecked")
    private static Class<? extends Message> classFor(String javaName) {
        try {
            Class<?> c = Class.forName(javaName);
            if (!Message.class.isAssignableFrom(c)) return null;
            return (Class<? extends Message>) c;
        } catch (ClassNotFoundException e) {
            return null;
        }
    }

    private static Message newInstance(Class<? extends Message> c) throws Exception {
        return c.getConstructor().newInstance();
    }

    /** Every spec in DIR that has a Kafka class; specs without one are reported on stderr. */
    private static List<Handled> handled(Path specDir, boolean report) throws Exception {
        List<Handled> out = new ArrayList<>();
        for (Spec.Message m : Spec.loadAll(specDir).values()) {
            Class<? extends Message> c = classFor(m.javaClassName());
            if (c == null) {
                if (report) System.err.println("skipped: " + m.name + " (no class " + m.javaClassName() + " in kafka-clients)");
                continue;
            }
            Message inst = newInstance(c);
            short lo = inst.lowestSupportedVersion();
            short hi = inst.highestSupportedVersion();
            if (report && (m.validVersions.lo() != lo || m.validVersions.hi() != hi)) {
                System.err.println("note: " + m.name + " spec validVersions " + m.validVersions.lo() + "-"
                    + m.validVersions.hi() + " but Kafka's class supports " + lo + "-" + hi);
            }
            out.add(new Handled(m, c, lo, hi));
        }
        return out;
    }

    private static Path specDir(Map<String, String> opts) {
        String s = opts.getOrDefault("spec", System.getenv().getOrDefault("FJORD_KAFKA_PROTOCOL", DEFAULT_SPEC));
        return Paths.get(s);
    }

    // ---------------------------------------------------------------- versions

    private static int versions(Map<String, String> opts) throws Exception {
        for (Handled h : handled(specDir(opts), true)) {
            System.out.println(h.spec.name + " " + h.lo + " " + h.hi);
        }
        return 0;
    }

    // ---------------------------------------------------------------- encoding helpers

    static byte[] encode(Message m, short version) {
        ObjectSerializationCache cache = new ObjectSerializationCache();
        int size = m.size(cache, version);
        ByteBuffer buf = ByteBuffer.allocate(size);
        m.write(new ByteBufferAccessor(buf), cache, version);
        if (buf.position() != size) {
            throw new IllegalStateException("size() said " + size + " but write produced " + buf.position() + " bytes");
        }
        return buf.array();
    }

    private static void writeRecord(DataOutputStream out, String name, short version, byte[] body) throws IOException {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        out.writeShort(n.length);
        out.write(n);
        out.writeShort(version);
        out.writeInt(body.length);
        out.write(body);
    }

    record Rec(long index, String name, short version, byte[] body) { }

    /** Returns the next record, or null at a clean end of file. */
    private static Rec readRecord(DataInputStream in, long index) throws IOException {
        int b0 = in.read();
        if (b0 < 0) return null;
        int b1 = in.read();
        if (b1 < 0) throw new EOFException("truncated record " + index);
        int nlen = (b0 << 8) | b1;
        byte[] n = new byte[nlen];
        in.readFully(n);
        short version = in.readShort();
        long blen = in.readInt() & 0xffffffffL;
        if (blen > Integer.MAX_VALUE - 16) throw new IOException("record " + index + ": body too large: " + blen);
        byte[] body = new byte[(int) blen];
        in.readFully(body);
        return new Rec(index, new String(n, StandardCharsets.UTF_8), version, body);
    }

    // ---------------------------------------------------------------- generate

    private static long seedFor(long seed, String name, int version) {
        long h = seed * 0x9E3779B97F4A7C15L;
        h ^= name.hashCode() * 0xC2B2AE3D27D4EB4FL;
        h ^= (version + 1) * 0x165667B19E3779F9L;
        return h;
    }

    interface Sink {
        void accept(String name, short version, byte[] body) throws IOException;
    }

    private static int generate(Map<String, String> opts) throws Exception {
        long t0 = System.nanoTime();
        Path out = Paths.get(req(opts, "out"));
        long[] stats;
        try (DataOutputStream dos = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(out), 1 << 16))) {
            stats = produce(opts, (n, v, b) -> writeRecord(dos, n, v, b));
        }
        System.err.printf("generate: %d (name, version) pairs, %d records, %d instances skipped, %d bytes, %.1f s%n",
            stats[0], stats[1], stats[2], Files.size(out), (System.nanoTime() - t0) / 1e9);
        return 0;
    }

    /** Generates the random instances; returns {pairs, records, skipped}. */
    private static long[] produce(Map<String, String> opts, Sink sink) throws Exception {
        long seed = Long.parseLong(req(opts, "seed"));
        int count = Integer.parseInt(req(opts, "count"));
        boolean unknownTags = opts.containsKey("unknown-tags");
        TreeSet<String> only = null;
        if (opts.containsKey("only")) only = new TreeSet<>(List.of(opts.get("only").split(",")));
        List<Handled> hs = handled(specDir(opts), true);

        long records = 0, pairs = 0, skipped = 0;
        Map<String, String> skipReasons = new LinkedHashMap<>();
        Map<String, Integer> skipCounts = new TreeMap<>();
        {
            for (Handled h : hs) {
                if (only != null && !only.contains(h.spec.name)) continue;
                Generator g = new Generator(h.spec, h.cls, unknownTags);
                for (short v = h.lo; v <= h.hi; v++) {
                    Random rnd = new Random(seedFor(seed, h.spec.name, v));
                    int wrote = 0;
                    for (int i = 0; i < count; i++) {
                        byte[] body;
                        try {
                            Message m = g.build(rnd, v);
                            body = encode(m, v);
                        } catch (Throwable e) {
                            Throwable c = e instanceof java.lang.reflect.InvocationTargetException ? e.getCause() : e;
                            String key = h.spec.name + " v" + v;
                            skipped++;
                            skipCounts.merge(key, 1, Integer::sum);
                            skipReasons.putIfAbsent(key, c.getClass().getSimpleName() + ": " + c.getMessage());
                            continue;
                        }
                        sink.accept(h.spec.name, v, body);
                        wrote++;
                        records++;
                    }
                    if (wrote > 0) pairs++;
                }
            }
        }
        for (Map.Entry<String, String> e : skipReasons.entrySet()) {
            System.err.println("skipped " + skipCounts.get(e.getKey()) + " instance(s) of " + e.getKey() + ": " + e.getValue());
        }
        return new long[]{pairs, records, skipped};
    }

    // ---------------------------------------------------------------- selftest

    /**
     * Checks the checker: Kafka must reproduce its own bytes, and must reject every record with a
     * trailing byte appended or its last byte cut off.
     */
    private static int selftest(Map<String, String> opts) throws Exception {
        opts.putIfAbsent("seed", "1");
        opts.putIfAbsent("count", "3");
        long t0 = System.nanoTime();
        Map<String, Class<? extends Message>> classes = new HashMap<>();
        long[] ok = new long[1];
        List<String> bad = new ArrayList<>();
        for (boolean unknown : new boolean[]{false, true}) {
            Map<String, String> o = new HashMap<>(opts);
            if (unknown) o.put("unknown-tags", "true");
            produce(o, (n, v, b) -> {
                String p = check(new Rec(0, n, v, b), classes);
                if (p != null) bad.add(n + " v" + v + ": own bytes not reproduced: " + p);
                byte[] longer = java.util.Arrays.copyOf(b, b.length + 1);
                if (check(new Rec(0, n, v, longer), classes) == null) bad.add(n + " v" + v + ": trailing byte not detected");
                if (b.length > 0) {
                    byte[] shorter = java.util.Arrays.copyOf(b, b.length - 1);
                    if (check(new Rec(0, n, v, shorter), classes) == null) bad.add(n + " v" + v + ": truncation not detected");
                }
                if (check(new Rec(0, n + "Bogus", v, b), classes) == null) bad.add(n + ": bogus name accepted");
                ok[0]++;
            });
        }
        for (int i = 0; i < Math.min(bad.size(), 20); i++) System.out.println("FAIL " + bad.get(i));
        System.out.printf("selftest: %d records checked, %.1f s%n", ok[0], (System.nanoTime() - t0) / 1e9);
        System.out.println((ok[0] - bad.size()) + " passed, " + bad.size() + " failed");
        return bad.isEmpty() && ok[0] > 0 ? 0 : 1;
    }

    // ---------------------------------------------------------------- dump

    private static int dump(Map<String, String> opts) throws Exception {
        Path in = Paths.get(req(opts, "in"));
        long limit = Long.parseLong(opts.getOrDefault("limit", "100"));
        TreeSet<String> only = null;
        if (opts.containsKey("only")) only = new TreeSet<>(List.of(opts.get("only").split(",")));
        Map<String, Class<? extends Message>> classes = new HashMap<>();
        long shown = 0;
        try (DataInputStream dis = new DataInputStream(new BufferedInputStream(Files.newInputStream(in), 1 << 16))) {
            for (long idx = 0; shown < limit; idx++) {
                Rec r = readRecord(dis, idx);
                if (r == null) break;
                if (only != null && !only.contains(r.name)) continue;
                shown++;
                System.out.println("#" + idx + " " + r.name + " v" + r.version + " " + r.body.length + " bytes: " + hex(r.body, 0, 256)
                    + (r.body.length > 256 ? "..." : ""));
                Class<? extends Message> cls = lookup(r.name, classes);
                if (cls == null) {
                    System.out.println("    (no Kafka class)");
                    continue;
                }
                try {
                    Message m = newInstance(cls);
                    m.read(new ByteBufferAccessor(ByteBuffer.wrap(r.body)), r.version);
                    System.out.println("    " + m);
                } catch (Throwable e) {
                    System.out.println("    Kafka failed to read: " + e);
                }
            }
        }
        return 0;
    }

    private static String req(Map<String, String> opts, String key) {
        String v = opts.get(key);
        if (v == null) usage("missing --" + key);
        return v;
    }

    // ---------------------------------------------------------------- verify

    static String hex(byte[] b, int from, int to) {
        StringBuilder sb = new StringBuilder();
        for (int i = Math.max(0, from); i < Math.min(b.length, to); i++) {
            sb.append(String.format("%02x", b[i] & 0xff));
        }
        return sb.toString();
    }

    private static String hexAround(byte[] b, int at) {
        final int window = 96;
        if (b.length <= 2 * window) return hex(b, 0, b.length);
        int from = Math.max(0, at - window / 2);
        int to = Math.min(b.length, from + window);
        return (from > 0 ? "[" + from + "]..." : "") + hex(b, from, to) + (to < b.length ? "...(" + b.length + " bytes)" : "");
    }

    private static final class Counts {
        long pass, fail;
    }

    private static int verify(Map<String, String> opts, String cmd) throws Exception {
        long t0 = System.nanoTime();
        Path in = Paths.get(req(opts, "in"));
        int maxFailures = Integer.parseInt(opts.getOrDefault("max-failures", "10"));
        Map<String, Class<? extends Message>> classes = new HashMap<>();
        if (opts.containsKey("spec") || opts.containsKey("require-all")) {
            for (Handled h : handled(specDir(opts), false)) classes.put(h.spec.name, h.cls);
        }
        Map<String, Counts> counts = new TreeMap<>();
        TreeSet<String> seen = new TreeSet<>();
        List<String> failures = new ArrayList<>();
        long total = 0, passed = 0, failed = 0;
        try (DataInputStream dis = new DataInputStream(new BufferedInputStream(Files.newInputStream(in), 1 << 16))) {
            for (long idx = 0; ; idx++) {
                Rec r;
                try {
                    r = readRecord(dis, idx);
                } catch (IOException e) {
                    failed++;
                    failures.add("record " + idx + ": malformed file: " + e.getMessage());
                    break;
                }
                if (r == null) break;
                total++;
                String problem = check(r, classes);
                Counts c = counts.computeIfAbsent(r.name, k -> new Counts());
                seen.add(r.name + " " + r.version);
                if (problem == null) {
                    c.pass++;
                    passed++;
                } else {
                    c.fail++;
                    failed++;
                    if (failures.size() < maxFailures) {
                        failures.add("record " + r.index + " " + r.name + " v" + r.version + ": " + problem);
                    }
                }
            }
        }
        if (opts.containsKey("require-all")) {
            for (Handled h : handled(specDir(opts), false)) {
                for (short v = h.lo; v <= h.hi; v++) {
                    if (!seen.contains(h.spec.name + " " + v)) {
                        failed++;
                        counts.computeIfAbsent(h.spec.name, k -> new Counts()).fail++;
                        if (failures.size() < maxFailures) failures.add(h.spec.name + " v" + v + ": no record in the file");
                    }
                }
            }
        }
        if (!opts.containsKey("quiet")) {
            for (Map.Entry<String, Counts> e : counts.entrySet()) {
                System.out.printf("%-50s pass %6d fail %6d%n", e.getKey(), e.getValue().pass, e.getValue().fail);
            }
        }
        if (total == 0) {
            failed++;
            failures.add("no records in " + in);
        }
        for (String f : failures) System.out.println("FAIL " + f);
        if (failed > failures.size()) System.out.println("... " + (failed - failures.size()) + " more failure(s)");
        System.out.printf("%s: %d records, %d names, %d (name, version) pairs, %.1f s%n", cmd, total, counts.size(),
            seen.size(), (System.nanoTime() - t0) / 1e9);
        System.out.println(passed + " passed, " + failed + " failed");
        return failed == 0 ? 0 : 1;
    }

    private static Class<? extends Message> lookup(String name, Map<String, Class<? extends Message>> classes) {
        Class<? extends Message> cls = classes.get(name);
        if (cls == null) {
            Spec.Message probe = new Spec.Message();
            probe.name = name;
            probe.type = name.endsWith("Request") || name.endsWith("Response") || name.endsWith("Header")
                ? "request" : "data";
            cls = classFor(probe.javaClassName());
            if (cls != null) classes.put(name, cls);
        }
        return cls;
    }

    /** Decodes with Kafka's class, re-encodes, compares. Returns null when identical, else a description. */
    private static String check(Rec r, Map<String, Class<? extends Message>> classes) {
        Class<? extends Message> cls = lookup(r.name, classes);
        if (cls == null) return "no Kafka class for name '" + r.name + "'";
        Message m;
        try {
            m = newInstance(cls);
        } catch (Exception e) {
            return "cannot instantiate " + cls.getName() + ": " + e;
        }
        if (r.version < m.lowestSupportedVersion() || r.version > m.highestSupportedVersion()) {
            return "version outside Kafka's range " + m.lowestSupportedVersion() + "-" + m.highestSupportedVersion();
        }
        ByteBuffer buf = ByteBuffer.wrap(r.body);
        try {
            m.read(new ByteBufferAccessor(buf), r.version);
        } catch (Throwable e) {
            return "Kafka failed to read: " + e.getClass().getSimpleName() + ": " + e.getMessage()
                + "\n    input  " + hexAround(r.body, buf.position());
        }
        if (buf.hasRemaining()) {
            return "Kafka's read stopped at byte " + buf.position() + " of " + r.body.length
                + "\n    input  " + hexAround(r.body, buf.position());
        }
        byte[] again;
        try {
            again = encode(m, r.version);
        } catch (Throwable e) {
            return "Kafka failed to re-encode: " + e.getClass().getSimpleName() + ": " + e.getMessage()
                + "\n    input  " + hexAround(r.body, 0);
        }
        if (java.util.Arrays.equals(again, r.body)) return null;
        int at = java.util.Arrays.mismatch(again, r.body);
        return "re-encoding differs at byte " + at + " (input " + r.body.length + " bytes, Kafka " + again.length + " bytes)"
            + "\n    input  " + hexAround(r.body, at)
            + "\n    kafka  " + hexAround(again, at)
            + "\n    decoded " + truncate(String.valueOf(m), 400);
    }

    private static String truncate(String s, int n) {
        return s.length() <= n ? s : s.substring(0, n) + "...";
    }
}
