// Java client suite: kafka-clients producer and consumer with their default settings
// (only bootstrap servers, byte-array (de)serializers and, per run, compression.type).
// Usage: java ItJava RECORDS_FILE   (env FJORD_IT_BOOTSTRAP, FJORD_IT_METRICS_URL, FJORD_IT_TOPICS)
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class ItJava {
  static final String SUITE = "java";
  static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
  static final int PARTITIONS = 3;
  static String bootstrap;
  static String metricsUrl;
  static final String RUN_ID = Long.toHexString(System.currentTimeMillis());

  record Hdr(String name, byte[] value) {}

  static final class Rec {
    final int partition;
    final byte[] key;
    final byte[] value;
    final List<Hdr> headers;
    long timestamp;

    Rec(int partition, byte[] key, byte[] value, List<Hdr> headers, long timestamp) {
      this.partition = partition;
      this.key = key;
      this.value = value;
      this.headers = headers;
      this.timestamp = timestamp;
    }

    boolean sameData(Rec o) {
      if (!Arrays.equals(key, o.key) || !Arrays.equals(value, o.value) || headers.size() != o.headers.size()) {
        return false;
      }
      for (int i = 0; i < headers.size(); i++) {
        if (!headers.get(i).name.equals(o.headers.get(i).name)
            || !Arrays.equals(headers.get(i).value, o.headers.get(i).value)) {
          return false;
        }
      }
      return true;
    }

    static String show(byte[] b) {
      if (b == null) {
        return "null";
      }
      String hex = HexFormat.of().formatHex(b, 0, Math.min(b.length, 24));
      return "0x" + hex + (b.length > 24 ? "...(" + b.length + " bytes)" : "");
    }

    @Override
    public String toString() {
      StringBuilder sb = new StringBuilder("<p" + partition + " key=" + show(key) + " value=" + show(value) + " headers=[");
      for (Hdr h : headers) {
        sb.append(h.name).append('=').append(show(h.value)).append(' ');
      }
      return sb.append("] ts=").append(timestamp).append('>').toString();
    }
  }

  static byte[] bytes(String tok) {
    if (tok.equals("~")) {
      return null;
    }
    if (tok.equals(".")) {
      return new byte[0];
    }
    String[] parts = tok.split("\\*");
    byte[] unit = HexFormat.of().parseHex(parts[0]);
    int n = parts.length > 1 ? Integer.parseInt(parts[1]) : 1;
    byte[] out = new byte[unit.length * n];
    for (int i = 0; i < n; i++) {
      System.arraycopy(unit, 0, out, i * unit.length, unit.length);
    }
    return out;
  }

  /** records.txt, with explicit timestamps 1 s apart starting 10 minutes ago. */
  static List<Rec> loadRecords(Path path) throws Exception {
    List<Rec> out = new ArrayList<>();
    long base = System.currentTimeMillis() / 1000 * 1000 - 600_000;
    for (String line : Files.readAllLines(path, StandardCharsets.US_ASCII)) {
      line = line.split("#", 2)[0].trim();
      if (line.isEmpty()) {
        continue;
      }
      String[] f = line.split("\\s+");
      List<Hdr> hs = new ArrayList<>();
      for (int i = 3; i < f.length; i++) {
        String[] kv = f[i].split("=", 2);
        hs.add(new Hdr(new String(bytes(kv[0]), StandardCharsets.UTF_8), bytes(kv[1])));
      }
      out.add(new Rec(Integer.parseInt(f[0]), bytes(f[1]), bytes(f[2]), hs, base + 1000L * out.size()));
    }
    return out;
  }

  static void check(boolean ok, String fmt, Object... args) {
    if (!ok) {
      throw new AssertionError(String.format(fmt, args));
    }
  }

  static void assertSame(String what, List<Rec> got, List<Rec> expected) {
    for (int i = 0; i < Math.min(got.size(), expected.size()); i++) {
      Rec g = got.get(i);
      Rec e = expected.get(i);
      check(g.sameData(e), "%s: record %d differs:%n  got      %s%n  expected %s", what, i, g, e);
      check(g.timestamp == e.timestamp, "%s: record %d timestamp %d, expected %d", what, i, g.timestamp, e.timestamp);
    }
    check(got.size() == expected.size(), "%s: got %d records, expected %d", what, got.size(), expected.size());
  }

  static Properties common() {
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    return p;
  }

  /** The one topic-creation step: Admin CreateTopics, or auto-creation through producer metadata. */
  static void createTopic(String name) throws Exception {
    if ("admin".equals(System.getenv("FJORD_IT_TOPICS"))) {
      try (Admin admin = Admin.create(common())) {
        admin.createTopics(List.of(new NewTopic(name, PARTITIONS, (short) 1))).all().get();
      }
    }
    Properties p = common();
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      long deadline = System.currentTimeMillis() + 30_000;
      while (true) {
        List<PartitionInfo> parts = producer.partitionsFor(name);
        if (parts.size() == PARTITIONS && parts.stream().allMatch(pi -> pi.leader() != null && pi.leader().id() >= 0)) {
          return;
        }
        check(System.currentTimeMillis() < deadline, "topic %s: %d partitions after 30 s", name, parts.size());
        Thread.sleep(200);
      }
    }
  }

  static void produce(String topic, String codec, List<Rec> records) throws Exception {
    Properties p = common();
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    p.put("compression.type", codec);
    List<Future<RecordMetadata>> futures = new ArrayList<>();
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      for (Rec r : records) {
        List<Header> hs = new ArrayList<>();
        for (Hdr h : r.headers) {
          hs.add(new RecordHeader(h.name, h.value));
        }
        futures.add(producer.send(new ProducerRecord<>(topic, r.partition, r.timestamp, r.key, r.value, hs)));
      }
      producer.flush();
      Map<Integer, Long> next = new HashMap<>();
      for (Future<RecordMetadata> f : futures) {
        RecordMetadata md = f.get();
        long want = next.getOrDefault(md.partition(), 0L);
        check(md.offset() == want, "p%d: offset %d, expected %d", md.partition(), md.offset(), want);
        next.put(md.partition(), want + 1);
      }
    }
  }

  static List<Rec> read(KafkaConsumer<byte[], byte[]> c, TopicPartition tp, long offset, int count) {
    c.assign(List.of(tp));
    c.seek(tp, offset);
    List<Rec> out = new ArrayList<>();
    long deadline = System.currentTimeMillis() + 30_000;
    while (out.size() < count && System.currentTimeMillis() < deadline) {
      for (ConsumerRecord<byte[], byte[]> m : c.poll(Duration.ofMillis(500)).records(tp)) {
        check(m.offset() == offset + out.size(), "offset %d, expected %d", m.offset(), offset + out.size());
        List<Hdr> hs = new ArrayList<>();
        for (Header h : m.headers()) {
          hs.add(new Hdr(h.key(), h.value()));
        }
        out.add(new Rec(tp.partition(), m.key(), m.value(), hs, m.timestamp()));
      }
    }
    check(c.position(tp) == offset + out.size(), "position %d after %d records from %d", c.position(tp), out.size(), offset);
    return out;
  }

  static int[] timestampQuery(List<Rec> expected) {
    for (int j = Math.max(1, expected.size() / 2); j < expected.size(); j++) {
      long a = expected.get(j - 1).timestamp;
      long b = expected.get(j).timestamp;
      if (b > a + 1) {
        return new int[] {(int) ((a + b) / 2 + 1 - a), j};  // offset from a, index
      }
    }
    throw new AssertionError("no distinct consecutive timestamps");
  }

  static void checkCodec(String codec, List<Rec> records) throws Exception {
    String topic = "it." + SUITE + "." + codec + "." + RUN_ID;
    createTopic(topic);
    produce(topic, codec, records);
    Properties p = common();
    p.put("key.deserializer", ByteArrayDeserializer.class.getName());
    p.put("value.deserializer", ByteArrayDeserializer.class.getName());
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
      for (int part = 0; part < PARTITIONS; part++) {
        final int pp = part;
        List<Rec> expected = records.stream().filter(r -> r.partition == pp).toList();
        TopicPartition tp = new TopicPartition(topic, part);
        long end = c.endOffsets(List.of(tp)).get(tp);
        check(end == expected.size(), "p%d end offset %d, expected %d", part, end, expected.size());
        check(c.beginningOffsets(List.of(tp)).get(tp) == 0, "p%d beginning offset not 0", part);
        assertSame("p" + part + " from the beginning", read(c, tp, 0, expected.size()), expected);
        int mid = expected.size() / 2;
        assertSame("p" + part + " from offset " + mid, read(c, tp, mid, expected.size() - mid),
            expected.subList(mid, expected.size()));
        int[] qj = timestampQuery(expected);
        long q = expected.get(qj[1] - 1).timestamp + qj[0];
        int j = qj[1];
        OffsetAndTimestamp found = c.offsetsForTimes(Map.of(tp, q)).get(tp);
        check(found != null && found.offset() == j && found.timestamp() == expected.get(j).timestamp,
            "p%d offsetsForTimes(%d) = %s, expected offset %d", part, q, found, j);
        assertSame("p" + part + " from timestamp " + q, read(c, tp, found.offset(), expected.size() - j),
            expected.subList(j, expected.size()));
      }
    }
  }

  static final Pattern SAMPLE = Pattern.compile("^fjord_fetch_requests_total\\{([^}]*)\\}\\s+(\\S+)", Pattern.MULTILINE);

  static Map<String, Double> fetchMetrics() throws Exception {
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    HttpResponse<String> resp = http.send(HttpRequest.newBuilder(URI.create(metricsUrl)).timeout(Duration.ofSeconds(10)).build(),
        HttpResponse.BodyHandlers.ofString());
    check(resp.statusCode() == 200, "GET %s: HTTP %d", metricsUrl, resp.statusCode());
    Map<String, Double> out = new HashMap<>();
    Matcher m = SAMPLE.matcher(resp.body());
    while (m.find()) {
      Matcher s = Pattern.compile("session=\"([^\"]*)\"").matcher(m.group(1));
      if (s.find()) {
        out.merge(s.group(1), Double.parseDouble(m.group(2)), Double::sum);
      }
    }
    for (String kind : List.of("incremental", "full", "sessionless")) {
      check(out.containsKey(kind), "metrics: no fjord_fetch_requests_total{session=\"%s\"} in %s", kind, metricsUrl);
    }
    return out;
  }

  public static void main(String[] args) throws Exception {
    bootstrap = Objects.requireNonNull(System.getenv("FJORD_IT_BOOTSTRAP"), "FJORD_IT_BOOTSTRAP");
    metricsUrl = System.getenv().getOrDefault("FJORD_IT_METRICS_URL", "");
    String only = System.getenv().getOrDefault("FJORD_IT_ONLY", "");
    System.out.println(SUITE + ": kafka-clients " + org.apache.kafka.common.utils.internals.AppInfoParser.getVersion() + ", Java "
        + System.getProperty("java.version"));
    int passed = 0;
    int failed = 0;
    Map<String, Double> before = null;
    Throwable metricsError = null;
    if (!metricsUrl.isEmpty()) {
      try {
        before = fetchMetrics();
      } catch (Throwable e) {
        metricsError = e;
      }
    }
    for (String codec : CODECS) {
      if (!codec.contains(only)) {
        continue;
      }
      long t0 = System.nanoTime();
      try {
        checkCodec(codec, loadRecords(Path.of(args[0])));
        passed++;
        System.out.printf("ok   %s: %s (%.1fs)%n", SUITE, codec, (System.nanoTime() - t0) / 1e9);
      } catch (Throwable e) {
        failed++;
        System.out.printf("FAIL %s: %s (%.1fs)%n", SUITE, codec, (System.nanoTime() - t0) / 1e9);
        e.printStackTrace(System.out);
      }
    }
    // The consumer's fetches must be incremental (KIP-227 fetch sessions): Fjord counts them.
    String name = "consumer fetches are incremental";
    if (metricsUrl.isEmpty()) {
      System.out.println("skip " + SUITE + ": " + name + " (no metrics URL: reference Kafka)");
    } else {
      try {
        if (metricsError != null) {
          throw new AssertionError("GET " + metricsUrl + " before the run failed", metricsError);
        }
        Map<String, Double> after = fetchMetrics();
        double inc = after.get("incremental") - before.get("incremental");
        System.out.printf("%s: fetch requests during the run: incremental +%.0f, full +%.0f, sessionless +%.0f%n", SUITE, inc,
            after.get("full") - before.get("full"), after.get("sessionless") - before.get("sessionless"));
        check(inc > 0, "fjord_fetch_requests_total{session=\"incremental\"} did not increase");
        passed++;
        System.out.println("ok   " + SUITE + ": " + name);
      } catch (Throwable e) {
        failed++;
        System.out.println("FAIL " + SUITE + ": " + name);
        e.printStackTrace(System.out);
      }
    }
    System.out.printf("%s: %d passed, %d failed%n", SUITE, passed, failed);
    System.exit(failed == 0 && passed > 0 ? 0 : 1);
  }
}
