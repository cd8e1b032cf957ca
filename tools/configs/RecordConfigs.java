// Records the topic and broker configs of a running Apache Kafka broker, as
// its DescribeConfigs answers them: name, type, default, read-only,
// sensitive, and the name of the DEFAULT_CONFIG synonym (a topic config's
// broker fallback). Output: TSV on stdout (see kafka-4.4-configs.tsv).
//
//   java -cp <kafka libs> RecordConfigs.java BOOTSTRAP TOPIC BROKER_ID
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.config.ConfigResource;

public class RecordConfigs {
    public static void main(String[] a) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", a[0]);
        try (Admin admin = Admin.create(p)) {
            ConfigResource topic = new ConfigResource(ConfigResource.Type.TOPIC, a[1]);
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, a[2]);
            var res = admin.describeConfigs(List.of(topic, broker), new DescribeConfigsOptions().includeSynonyms(true))
                          .all().get();
            List<String> lines = new ArrayList<>();
            for (var r : List.of(topic, broker)) {
                String scope = r.type() == ConfigResource.Type.TOPIC ? "topic" : "broker";
                for (ConfigEntry e : res.get(r).entries()) {
                    String def = "\\N", synonym = "";
                    if (e.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG && !e.isSensitive() && e.value() != null) {
                        def = e.value();
                    }
                    for (var s : e.synonyms()) {
                        if (s.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG) {
                            synonym = s.name();
                            if (s.value() != null && s.name().equals(e.name())) def = s.value();
                            if (s.value() != null && scope.equals("topic")) def = s.value();
                        }
                    }
                    lines.add(String.join("\t", scope, e.name(), e.type().toString(), def,
                                          String.valueOf(e.isReadOnly()), String.valueOf(e.isSensitive()), synonym));
                }
            }
            Collections.sort(lines);
            lines.forEach(System.out::println);
        }
    }
}
