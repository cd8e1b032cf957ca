package fjord.diff;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/** A minimal model of Kafka's JSON message specifications, enough to drive random generation. */
final class Spec {

    /** Inclusive version range; empty when lo > hi ("none"). */
    record Versions(int lo, int hi) {
        static final Versions NONE = new Versions(1, 0);
        static final Versions ALL = new Versions(0, Short.MAX_VALUE);

        static Versions parse(String s) {
            if (s == null) return NONE;
            s = s.trim();
            if (s.equals("none") || s.isEmpty()) return NONE;
            if (s.endsWith("+")) return new Versions(Integer.parseInt(s.substring(0, s.length() - 1)), Short.MAX_VALUE);
            int dash = s.indexOf('-');
            if (dash > 0) {
                return new Versions(Integer.parseInt(s.substring(0, dash)), Integer.parseInt(s.substring(dash + 1)));
            }
            int v = Integer.parseInt(s);
            return new Versions(v, v);
        }

        boolean contains(int v) {
            return v >= lo && v <= hi;
        }

        boolean isEmpty() {
            return lo > hi;
        }
    }

    static final class Field {
        String name;
        String type;
        Versions versions;
        Versions nullableVersions;
        Versions taggedVersions;
        Integer tag;
        boolean zeroCopy;
        /** Inline struct fields, or null when the struct is a common struct or the type is primitive. */
        List<Field> fields;

        boolean isArray() {
            return type.startsWith("[]");
        }

        String elementType() {
            return isArray() ? type.substring(2) : type;
        }
    }

    static final class Message {
        String name;
        String type;          // request, response, header, data
        Versions validVersions;
        Versions flexibleVersions;
        List<Field> fields;
        Map<String, List<Field>> commonStructs = new HashMap<>();
        Path file;

        /** Field list of a struct type used anywhere in this message. */
        List<Field> structFields(Field f) {
            if (f.fields != null) return f.fields;
            List<Field> common = commonStructs.get(f.elementType());
            if (common == null) {
                throw new IllegalStateException(name + ": no definition for struct type " + f.elementType());
            }
            return common;
        }

        String javaClassName() {
            switch (type) {
                case "request":
                case "response":
                case "header":
                    return "org.apache.kafka.common.message." + name + "Data";
                default:
                    return "org.apache.kafka.common.message." + name;
            }
        }
    }

    static final java.util.Set<String> PRIMITIVES = java.util.Set.of(
        "bool", "int8", "int16", "uint16", "int32", "uint32", "int64", "float64",
        "string", "bytes", "uuid", "records");

    static boolean isPrimitive(String t) {
        return PRIMITIVES.contains(t);
    }

    private static final ObjectMapper MAPPER = new ObjectMapper()
        .configure(JsonParser.Feature.ALLOW_COMMENTS, true);

    /** Resolves DIR to the folder holding the *.json specs (DIR itself or DIR/messages). */
    static Path messagesDir(Path dir) {
        Path m = dir.resolve("messages");
        if (Files.isDirectory(m)) return m;
        return dir;
    }

    /** Loads every spec in the folder, keyed (and sorted) by the spec's "name". */
    static Map<String, Message> loadAll(Path dir) throws IOException {
        Path mdir = messagesDir(dir);
        Map<String, Message> out = new TreeMap<>();
        List<Path> files = new ArrayList<>();
        try (var s = Files.list(mdir)) {
            s.filter(p -> p.getFileName().toString().endsWith(".json")).forEach(files::add);
        }
        Collections.sort(files);
        if (files.isEmpty()) throw new IOException("no *.json specs under " + mdir);
        for (Path p : files) {
            Message m = load(p);
            out.put(m.name, m);
        }
        return out;
    }

    static Message load(Path p) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (String line : Files.readAllLines(p, StandardCharsets.UTF_8)) {
            if (line.trim().startsWith("//")) continue;
            sb.append(line).append('\n');
        }
        JsonNode root = MAPPER.readTree(sb.toString());
        Message m = new Message();
        m.file = p;
        m.name = root.path("name").asText();
        m.type = root.path("type").asText();
        m.validVersions = Versions.parse(root.path("validVersions").asText(null));
        m.flexibleVersions = Versions.parse(root.path("flexibleVersions").asText("none"));
        m.fields = parseFields(root.path("fields"));
        for (JsonNode cs : root.path("commonStructs")) {
            m.commonStructs.put(cs.path("name").asText(), parseFields(cs.path("fields")));
        }
        return m;
    }

    private static List<Field> parseFields(JsonNode arr) {
        List<Field> out = new ArrayList<>();
        if (arr == null || !arr.isArray()) return out;
        for (JsonNode n : arr) {
            Field f = new Field();
            f.name = n.path("name").asText();
            f.type = n.path("type").asText();
            f.versions = Versions.parse(n.path("versions").asText(null));
            f.nullableVersions = Versions.parse(n.path("nullableVersions").asText("none"));
            f.taggedVersions = Versions.parse(n.path("taggedVersions").asText("none"));
            f.tag = n.has("tag") ? n.get("tag").asInt() : null;
            f.zeroCopy = n.path("zeroCopy").asBoolean(false);
            f.fields = n.has("fields") ? parseFields(n.get("fields")) : null;
            out.add(f);
        }
        return out;
    }
}
