// Produces the record set of a spec file (see batches.py) to partition 0 of a
// topic with the Apache Kafka Java producer, flushing at each FLUSH line.
// Run as a single-file source program with the Kafka classpath:
//   kafka-ref run-class tests/data/batches/BatchProducer.java BOOTSTRAP TOPIC CODEC SPECFILE

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class BatchProducer {
  static byte[] unhex(String s) {
    if (s.equals("-")) return null;
    byte[] out = new byte[s.length() / 2];
    for (int i = 0; i < out.length; i++) {
      out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
    }
    return out;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      System.err.println("usage: BatchProducer BOOTSTRAP TOPIC CODEC SPECFILE");
      System.exit(2);
    }
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, args[2]);
    p.put(ProducerConfig.LINGER_MS_CONFIG, "100");
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    List<Future<RecordMetadata>> sent = new ArrayList<>();
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      for (String line : Files.readAllLines(Path.of(args[3]), StandardCharsets.UTF_8)) {
        if (line.equals("FLUSH")) {
          producer.flush();
          continue;
        }
        String[] f = line.split("\t", -1);
        ProducerRecord<byte[], byte[]> r =
            new ProducerRecord<>(args[1], 0, unhex(f[0]), unhex(f[1]));
        if (!f[2].isEmpty()) {
          for (String kv : f[2].split(",")) {
            String[] h = kv.split(":", -1);
            r.headers().add(new RecordHeader(
                new String(unhex(h[0]), StandardCharsets.UTF_8), unhex(h[1])));
          }
        }
        sent.add(producer.send(r));
      }
      producer.flush();
      for (Future<RecordMetadata> f : sent) f.get();  // throws on a failed send
    }
  }
}
