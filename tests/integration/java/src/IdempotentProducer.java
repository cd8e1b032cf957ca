// The Java producer with its default settings (idempotent, acks=all, retries
// until delivery.timeout.ms) for tests/broker/idempotence_test.py, which kills
// and restarts the broker meanwhile. Sends COUNT records "r<number>" round-robin
// to the partitions of TOPIC, one a millisecond, and prints one line per delivery
// report: "ack PARTITION OFFSET VALUE" or "err VALUE EXCEPTION".
// Usage: java IdempotentProducer BOOTSTRAP TOPIC PARTITIONS COUNT [KEY=VALUE...]
// (KEY=VALUE: producer settings beyond the defaults, e.g. request.timeout.ms=1500)
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class IdempotentProducer {
  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", args[0]);
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    for (int i = 4; i < args.length; i++) {
      String[] kv = args[i].split("=", 2);
      p.put(kv[0], kv[1]);
    }
    String topic = args[1];
    int partitions = Integer.parseInt(args[2]);
    int count = Integer.parseInt(args[3]);
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      for (int i = 0; i < count; i++) {
        String value = String.format("r%07d", i);
        producer.send(new ProducerRecord<>(topic, i % partitions, null, value.getBytes(StandardCharsets.UTF_8)),
            (md, e) -> {
              synchronized (System.out) {
                if (e != null) {
                  System.out.println("err " + value + " " + e);
                } else {
                  System.out.println("ack " + md.partition() + " " + md.offset() + " " + value);
                }
                System.out.flush();
              }
            });
        Thread.sleep(1);
      }
      producer.flush();
    }
    System.out.println("done");
  }
}
