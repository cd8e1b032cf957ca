// Probe: sends Kafka requests written as JSON (Kafka's own generated JSON
// converters) to a broker over a raw socket and prints each response as JSON,
// so that Fjord and the reference Kafka can be asked exactly the same thing.
//
//   kafka-ref run-class tests/kafka_ref/Probe.java HOST:PORT < requests
//
// One request per input line: API_KEY VERSION JSON_BODY. One output line per
// request: the response body as JSON, or {"closed":true} when the broker
// closed the connection without answering (each request uses a new connection).
import java.io.*;
import java.net.Socket;
import java.nio.ByteBuffer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.kafka.common.message.*;
import org.apache.kafka.common.protocol.*;

public class Probe {
    public static void main(String[] a) throws Exception {
        String[] hp = a[0].split(":");
        ObjectMapper om = new ObjectMapper();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        int corr = 1;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty() || line.startsWith("#")) continue;
            String[] parts = line.split("\\s+", 3);
            short key = Short.parseShort(parts[0]), version = Short.parseShort(parts[1]);
            ApiMessageType type = ApiMessageType.fromApiKey(key);
            String name = type.name;
            JsonNode body = om.readTree(parts.length > 2 ? parts[2] : "{}");
            Class<?> reqConv = Class.forName("org.apache.kafka.common.message." + name + "RequestDataJsonConverter");
            ApiMessage req = (ApiMessage) reqConv.getMethod("read", JsonNode.class, short.class).invoke(null, body, version);
            RequestHeaderData h = new RequestHeaderData().setRequestApiKey(key).setRequestApiVersion(version)
                .setCorrelationId(corr).setClientId("fjord-probe");
            short hv = type.requestHeaderVersion(version);
            ObjectSerializationCache c = new ObjectSerializationCache();
            int hs = h.size(c, hv), bs = req.size(c, version);
            ByteBuffer buf = ByteBuffer.allocate(4 + hs + bs);
            buf.putInt(hs + bs);
            ByteBufferAccessor w = new ByteBufferAccessor(buf);
            h.write(w, c, hv);
            req.write(w, c, version);
            try (Socket s = new Socket(hp[0], Integer.parseInt(hp[1]))) {
                s.setSoTimeout(30000);
                s.getOutputStream().write(buf.array());
                DataInputStream din = new DataInputStream(s.getInputStream());
                int size;
                try { size = din.readInt(); } catch (EOFException e) { System.out.println("{\"closed\":true}"); corr++; continue; }
                byte[] resp = new byte[size];
                din.readFully(resp);
                ByteBufferAccessor r = new ByteBufferAccessor(ByteBuffer.wrap(resp));
                new ResponseHeaderData(r, type.responseHeaderVersion(version));
                ApiMessage m = type.newResponse();
                m.read(r, version);
                Class<?> respConv = Class.forName("org.apache.kafka.common.message." + name + "ResponseDataJsonConverter");
                Class<?> dataCls = Class.forName("org.apache.kafka.common.message." + name + "ResponseData");
                JsonNode out = (JsonNode) respConv.getMethod("write", dataCls, short.class).invoke(null, m, version);
                System.out.println(om.writeValueAsString(out));
            }
            corr++;
        }
    }
}
