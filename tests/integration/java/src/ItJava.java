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
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
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

  interface Call {
    Object run() throws Exception;
  }

  /** The call must fail with an ExecutionException caused by `want`. */
  static void expectError(String what, Class<? extends Throwable> want, Call call) throws Exception {
    try {
      Object got = call.run();
      throw new AssertionError(what + ": succeeded (" + got + "), expected " + want.getSimpleName());
    } catch (ExecutionException e) {
      check(want.isInstance(e.getCause()), "%s: failed with %s, expected %s", what, e.getCause(), want.getSimpleName());
    }
  }

  static ConfigEntry topicConfig(Admin admin, String topic, String name) throws Exception {
    ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    Config cfg = admin.describeConfigs(List.of(r)).all().get().get(r);
    ConfigEntry e = cfg.get(name);
    check(e != null, "describeConfigs %s: no %s among %d entries", topic, name, cfg.entries().size());
    return e;
  }

  static Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> listOffsets(Admin admin, TopicPartition tp, OffsetSpec spec)
      throws Exception {
    return admin.listOffsets(Map.of(tp, spec)).all().get();
  }

  /**
   * The Java Admin client: createTopics, describeTopics, describeConfigs, incrementalAlterConfigs, createPartitions,
   * deleteRecords, describeCluster, describeLogDirs, listOffsets, deleteTopics, each with the answer Kafka 4.4 gives.
   */
  static void checkAdmin() throws Exception {
    String a = "it." + SUITE + ".admin-a." + RUN_ID;
    String b = "it." + SUITE + ".admin-b." + RUN_ID;
    String v = "it." + SUITE + ".admin-validate." + RUN_ID;
    try (Admin admin = Admin.create(common())) {
      // describeCluster: one node, which is also the controller the client is shown.
      DescribeClusterResult cluster = admin.describeCluster();
      List<Node> nodes = new ArrayList<>(cluster.nodes().get());
      check(nodes.size() == 1, "describeCluster: nodes %s, expected one", nodes);
      Node node = nodes.get(0);
      String clusterId = cluster.clusterId().get();
      check(clusterId != null && !clusterId.isEmpty(), "describeCluster: cluster id %s", clusterId);
      Node controller = cluster.controller().get();
      check(controller != null && controller.id() == node.id(), "describeCluster: controller %s, node %s", controller, node);
      String[] hp = bootstrap.split(",")[0].split(":");
      check(node.port() == Integer.parseInt(hp[hp.length - 1]), "describeCluster: node %s, bootstrap %s", node, bootstrap);

      // createTopics: explicit partitions and configs; broker defaults (-1, -1); validateOnly; errors.
      NewTopic ta = new NewTopic(a, 2, (short) 1).configs(Map.of("retention.ms", "3600000", "cleanup.policy", "delete"));
      NewTopic tb = new NewTopic(b, Optional.empty(), Optional.empty());
      CreateTopicsResult created = admin.createTopics(List.of(ta, tb));
      created.all().get();
      check(created.numPartitions(a).get() == 2, "createTopics %s: %d partitions", a, created.numPartitions(a).get());
      check(created.numPartitions(b).get() == PARTITIONS, "createTopics %s with broker defaults: %d partitions, expected %d",
          b, created.numPartitions(b).get(), PARTITIONS);
      check(created.replicationFactor(b).get() == 1, "createTopics %s: replication factor %d", b,
          created.replicationFactor(b).get());
      check("3600000".equals(created.config(a).get().get("retention.ms").value()), "createTopics %s: retention.ms %s", a,
          created.config(a).get().get("retention.ms"));
      Uuid idA = created.topicId(a).get();
      check(idA != null && !Uuid.ZERO_UUID.equals(idA), "createTopics %s: topic id %s", a, idA);
      expectError("createTopics of an existing topic", TopicExistsException.class,
          () -> admin.createTopics(List.of(new NewTopic(a, 1, (short) 1))).all().get());
      expectError("createTopics with replication factor 3 on one node", InvalidReplicationFactorException.class,
          () -> admin.createTopics(List.of(new NewTopic(v, 1, (short) 3))).all().get());
      CreateTopicsResult validated = admin.createTopics(List.of(new NewTopic(v, 5, (short) 1)),
          new CreateTopicsOptions().validateOnly(true));
      validated.all().get();
      check(validated.numPartitions(v).get() == 5, "createTopics validateOnly: %d partitions", validated.numPartitions(v).get());
      check(!admin.listTopics().names().get().contains(v), "createTopics validateOnly created %s", v);

      // describeTopics: partitions, leader, replicas, ISR, topic id.
      Map<String, TopicDescription> desc = admin.describeTopics(List.of(a, b)).allTopicNames().get();
      TopicDescription da = desc.get(a);
      check(da.topicId().equals(idA), "describeTopics %s: topic id %s, createTopics said %s", a, da.topicId(), idA);
      check(!da.isInternal(), "describeTopics %s: internal", a);
      check(da.partitions().size() == 2, "describeTopics %s: %d partitions", a, da.partitions().size());
      check(desc.get(b).partitions().size() == PARTITIONS, "describeTopics %s: %d partitions", b, desc.get(b).partitions().size());
      for (TopicPartitionInfo pi : da.partitions()) {
        check(pi.leader() != null && pi.leader().id() == node.id(), "describeTopics %s-%d: leader %s", a, pi.partition(), pi.leader());
        check(pi.replicas().size() == 1 && pi.isr().size() == 1, "describeTopics %s-%d: replicas %s isr %s", a, pi.partition(),
            pi.replicas(), pi.isr());
      }
      expectError("describeTopics of a missing topic", UnknownTopicOrPartitionException.class,
          () -> admin.describeTopics(List.of(v)).allTopicNames().get());

      // listOffsets on an empty partition, then on 10 records with known timestamps.
      TopicPartition tp = new TopicPartition(a, 0);
      check(listOffsets(admin, tp, OffsetSpec.latest()).get(tp).offset() == 0, "listOffsets latest of an empty partition");
      long t0 = System.currentTimeMillis() / 1000 * 1000 - 60_000;
      Properties p = common();
      p.put("key.serializer", ByteArraySerializer.class.getName());
      p.put("value.serializer", ByteArraySerializer.class.getName());
      try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
        for (int i = 0; i < 10; i++) {
          long ts = i == 7 ? t0 + 100_000 : t0 + 1000L * i;  // record 7 has the largest timestamp
          producer.send(new ProducerRecord<>(a, 0, ts, null, ("v" + i).getBytes(StandardCharsets.UTF_8))).get();
        }
      }
      check(listOffsets(admin, tp, OffsetSpec.earliest()).get(tp).offset() == 0, "listOffsets earliest");
      check(listOffsets(admin, tp, OffsetSpec.latest()).get(tp).offset() == 10, "listOffsets latest: %s",
          listOffsets(admin, tp, OffsetSpec.latest()).get(tp));
      ListOffsetsResult.ListOffsetsResultInfo at = listOffsets(admin, tp, OffsetSpec.forTimestamp(t0 + 3500)).get(tp);
      check(at.offset() == 4 && at.timestamp() == t0 + 4000, "listOffsets forTimestamp(t0+3.5 s): %s, expected offset 4", at);
      ListOffsetsResult.ListOffsetsResultInfo max = listOffsets(admin, tp, OffsetSpec.maxTimestamp()).get(tp);
      check(max.offset() == 7 && max.timestamp() == t0 + 100_000, "listOffsets maxTimestamp: %s, expected offset 7", max);
      ListOffsetsResult.ListOffsetsResultInfo none = listOffsets(admin, tp, OffsetSpec.forTimestamp(t0 + 200_000)).get(tp);
      check(none.offset() == -1, "listOffsets forTimestamp after the last record: %s, expected offset -1", none);

      // deleteRecords: the new low watermark, seen by listOffsets; beyond the end is an error.
      long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp).get().lowWatermark();
      check(low == 4, "deleteRecords before 4: low watermark %d", low);
      check(listOffsets(admin, tp, OffsetSpec.earliest()).get(tp).offset() == 4, "listOffsets earliest after deleteRecords: %s",
          listOffsets(admin, tp, OffsetSpec.earliest()).get(tp));
      expectError("deleteRecords beyond the high watermark", OffsetOutOfRangeException.class,
          () -> admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(11))).all().get());

      // describeConfigs: the topic's own settings and defaults, and the broker's.
      ConfigEntry retention = topicConfig(admin, a, "retention.ms");
      check("3600000".equals(retention.value()) && retention.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG
          && !retention.isDefault() && !retention.isReadOnly() && !retention.isSensitive()
          && retention.type() == ConfigEntry.ConfigType.LONG, "describeConfigs %s: %s", a, retention);
      ConfigEntry segment = topicConfig(admin, a, "segment.bytes");
      check("1073741824".equals(segment.value()) && segment.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG
          && segment.isDefault() && segment.type() == ConfigEntry.ConfigType.INT, "describeConfigs %s: %s", a, segment);
      ConfigResource brokerRes = new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(node.id()));
      Config brokerCfg = admin.describeConfigs(List.of(brokerRes)).all().get().get(brokerRes);
      ConfigEntry np = brokerCfg.get("num.partitions");
      check(np != null && "3".equals(np.value()) && np.source() == ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG,
          "describeConfigs broker %d: %s", node.id(), np);
      ConfigEntry hours = brokerCfg.get("log.retention.hours");
      check(hours != null && "168".equals(hours.value()) && hours.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG,
          "describeConfigs broker %d: %s", node.id(), hours);

      // incrementalAlterConfigs: SET and DELETE; an unknown name is refused.
      ConfigResource topicRes = new ConfigResource(ConfigResource.Type.TOPIC, a);
      admin.incrementalAlterConfigs(Map.of(topicRes, List.of(
          new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
          new AlterConfigOp(new ConfigEntry("cleanup.policy", ""), AlterConfigOp.OpType.DELETE)))).all().get();
      retention = topicConfig(admin, a, "retention.ms");
      check("7200000".equals(retention.value()) && retention.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
          "after incrementalAlterConfigs SET: %s", retention);
      ConfigEntry policy = topicConfig(admin, a, "cleanup.policy");
      check("delete".equals(policy.value()) && policy.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG,
          "after incrementalAlterConfigs DELETE: %s", policy);
      expectError("incrementalAlterConfigs of an unknown topic config", InvalidConfigurationException.class,
          () -> admin.incrementalAlterConfigs(Map.of(topicRes, List.of(
              new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET)))).all().get());

      // createPartitions: grow to 4; shrinking is refused.
      admin.createPartitions(Map.of(a, NewPartitions.increaseTo(4))).all().get();
      int parts = admin.describeTopics(List.of(a)).allTopicNames().get().get(a).partitions().size();
      check(parts == 4, "after createPartitions to 4: %d partitions", parts);
      expectError("createPartitions to fewer partitions", InvalidPartitionsException.class,
          () -> admin.createPartitions(Map.of(a, NewPartitions.increaseTo(2))).all().get());

      // describeLogDirs: one directory holding every partition of the topic, sizes that add up.
      // (Kafka creates the new partitions' logs shortly after createPartitions answers.)
      Map<String, LogDirDescription> dirs;
      long logDirsDeadline = System.currentTimeMillis() + 30_000;
      while (true) {
        dirs = admin.describeLogDirs(List.of(node.id())).allDescriptions().get().get(node.id());
        check(dirs != null && dirs.size() == 1, "describeLogDirs: %s", dirs);
        Map<TopicPartition, ReplicaInfo> infos = dirs.values().iterator().next().replicaInfos();
        if (infos.keySet().containsAll(List.of(new TopicPartition(a, 2), new TopicPartition(a, 3)))
            || System.currentTimeMillis() > logDirsDeadline) {
          break;
        }
        Thread.sleep(200);
      }
      LogDirDescription dir = dirs.values().iterator().next();
      check(dir.error() == null, "describeLogDirs: error %s", dir.error());
      check(dir.totalBytes().isPresent() && dir.usableBytes().isPresent()
          && dir.usableBytes().getAsLong() <= dir.totalBytes().getAsLong(), "describeLogDirs: total %s usable %s",
          dir.totalBytes(), dir.usableBytes());
      for (int i = 0; i < 4; i++) {
        ReplicaInfo ri = dir.replicaInfos().get(new TopicPartition(a, i));
        check(ri != null && !ri.isFuture() && ri.offsetLag() == 0, "describeLogDirs %s-%d: %s", a, i, ri);
        check(i == 0 ? ri.size() > 0 : ri.size() == 0, "describeLogDirs %s-%d: size %d", a, i, ri.size());
      }

      // deleteTopics: gone from listTopics and describeTopics.
      admin.deleteTopics(List.of(b)).all().get();
      Set<String> names = admin.listTopics().names().get();
      for (long end = System.currentTimeMillis() + 30_000; names.contains(b) && System.currentTimeMillis() < end;) {
        Thread.sleep(200);  // Kafka's metadata catches up shortly after the answer
        names = admin.listTopics().names().get();
      }
      check(!names.contains(b) && names.contains(a), "listTopics after deleteTopics %s: %s", b, names);
      expectError("describeTopics of a deleted topic", UnknownTopicOrPartitionException.class,
          () -> admin.describeTopics(List.of(b)).allTopicNames().get());
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

  // Lookups by topic id (issue 18 item 7): Admin.describeTopics by id sends
  // Metadata naming the id with an empty name; so does the KIP-848 consumer for
  // the topics a regex subscription is assigned.
  static void checkTopicIds() throws Exception {
    String topic = "it." + SUITE + ".by-id." + RUN_ID;
    try (Admin admin = Admin.create(common())) {
      admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get();
      Uuid id = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).topicId();
      TopicDescription d = admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds().get().get(id);
      check(d != null && topic.equals(d.name()) && id.equals(d.topicId()) && d.partitions().size() == 2,
          "describeTopics by id %s: %s", id, d);
      Uuid unknown = Uuid.randomUuid();
      expectError("describeTopics by an unknown id", UnknownTopicIdException.class,
          () -> admin.describeTopics(TopicCollection.ofTopicIds(List.of(unknown))).allTopicIds().get());
    }
    Properties pp = common();
    pp.put("key.serializer", ByteArraySerializer.class.getName());
    pp.put("value.serializer", ByteArraySerializer.class.getName());
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
      for (int i = 0; i < 4; i++) {
        producer.send(new ProducerRecord<>(topic, i % 2, null, ("r" + i).getBytes(StandardCharsets.UTF_8))).get();
      }
    }
    Properties p = common();
    p.put("key.deserializer", ByteArrayDeserializer.class.getName());
    p.put("value.deserializer", ByteArrayDeserializer.class.getName());
    p.put("group.id", "it." + SUITE + ".by-id-group." + RUN_ID);
    p.put("group.protocol", "consumer");
    p.put("auto.offset.reset", "earliest");
    int got = 0;
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
      c.subscribe(Pattern.compile(Pattern.quote("it." + SUITE + ".by-id.") + ".*" + Pattern.quote(RUN_ID)));
      long deadline = System.currentTimeMillis() + 45_000;
      while (got < 4 && System.currentTimeMillis() < deadline) {
        got += c.poll(Duration.ofMillis(500)).count();
      }
    }
    check(got == 4, "a KIP-848 consumer subscribed to a regex read %d of 4 records", got);
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
    if ("admin".contains(only)) {
      long t0 = System.nanoTime();
      try {
        checkAdmin();
        passed++;
        System.out.printf("ok   %s: admin (%.1fs)%n", SUITE, (System.nanoTime() - t0) / 1e9);
      } catch (Throwable e) {
        failed++;
        System.out.printf("FAIL %s: admin (%.1fs)%n", SUITE, (System.nanoTime() - t0) / 1e9);
        e.printStackTrace(System.out);
      }
    }
    if ("topic-ids".contains(only)) {
      long t0 = System.nanoTime();
      try {
        checkTopicIds();
        passed++;
        System.out.printf("ok   %s: topic-ids (%.1fs)%n", SUITE, (System.nanoTime() - t0) / 1e9);
      } catch (Throwable e) {
        failed++;
        System.out.printf("FAIL %s: topic-ids (%.1fs)%n", SUITE, (System.nanoTime() - t0) / 1e9);
        e.printStackTrace(System.out);
      }
    }
    // The consumer's fetches must be incremental (KIP-227 fetch sessions): Fjord counts them.
    String name = "consumer fetches are incremental";
    if (Arrays.stream(CODECS).noneMatch(c -> c.contains(only))) {
      System.out.println("skip " + SUITE + ": " + name + " (no codec test ran: FJORD_IT_ONLY=" + only + ")");
    } else if (metricsUrl.isEmpty()) {
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
