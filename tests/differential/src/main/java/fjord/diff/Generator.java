package fjord.diff;

import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.protocol.Message;
import org.apache.kafka.common.protocol.types.RawTaggedField;
import org.apache.kafka.common.record.internal.MemoryRecords;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;

/**
 * Builds random instances of one Kafka message class, driven by its JSON spec: for every field present
 * in the requested version it calls the class's setter with a random value of the field's type.
 */
final class Generator {
    final Spec.Message spec;
    final Class<? extends Message> cls;
    final boolean unknownTags;
    private final Map<String, Class<?>> nested = new HashMap<>();
    private final Map<String, Method> setters = new HashMap<>();
    private Random rnd;
    private short version;

    Generator(Spec.Message spec, Class<? extends Message> cls, boolean unknownTags) {
        this.spec = spec;
        this.cls = cls;
        this.unknownTags = unknownTags;
        for (Class<?> c : cls.getDeclaredClasses()) {
            nested.put(c.getSimpleName(), c);
        }
    }

    Message build(Random rnd, short version) throws Exception {
        this.rnd = rnd;
        this.version = version;
        Message m = cls.getConstructor().newInstance();
        fill(m, spec.fields);
        return m;
    }

    private boolean flexible() {
        return spec.flexibleVersions.contains(version);
    }

    private void fill(Object obj, List<Spec.Field> fields) throws Exception {
        Class<?> c = obj.getClass();
        for (Spec.Field f : fields) {
            if (!f.versions.contains(version)) continue;
            boolean tagged = f.tag != null && f.taggedVersions.contains(version);
            if (tagged && rnd.nextInt(4) == 0) continue; // leave at its default: not written
            Method setter = setter(c, f.name);
            Object value = value(f, setter.getParameterTypes()[0]);
            setter.invoke(obj, value);
        }
        if (unknownTags && flexible() && rnd.nextInt(3) == 0) {
            addUnknownTags((Message) obj, fields);
        }
    }

    private void addUnknownTags(Message m, List<Spec.Field> fields) {
        TreeSet<Integer> known = new TreeSet<>();
        for (Spec.Field f : fields) {
            if (f.tag != null) known.add(f.tag);
        }
        int top = known.isEmpty() ? 0 : known.last() + 1;
        TreeSet<Integer> tags = new TreeSet<>();
        int n = 1 + rnd.nextInt(2);
        for (int i = 0; i < n * 4 && tags.size() < n; i++) {
            int t;
            switch (rnd.nextInt(4)) {
                case 0: t = 1000 + rnd.nextInt(200000); break; // multi-byte varint tag
                default: t = rnd.nextInt(top + 6); break;
            }
            if (!known.contains(t)) tags.add(t);
        }
        for (int t : tags) {
            byte[] data = new byte[rnd.nextInt(7)];
            rnd.nextBytes(data);
            m.unknownTaggedFields().add(new RawTaggedField(t, data));
        }
    }

    private Method setter(Class<?> c, String fieldName) {
        String key = c.getName() + "#" + fieldName;
        Method m = setters.get(key);
        if (m != null) return m;
        String want = "set" + fieldName;
        for (Method cand : c.getMethods()) {
            if (cand.getParameterCount() == 1 && cand.getName().equalsIgnoreCase(want)
                && !Modifier.isStatic(cand.getModifiers())) {
                m = cand;
                break;
            }
        }
        if (m == null) {
            throw new IllegalStateException("no setter " + want + " in " + c.getName());
        }
        setters.put(key, m);
        return m;
    }

    private Class<?> structClass(String typeName) {
        Class<?> c = nested.get(typeName);
        if (c == null) throw new IllegalStateException("no nested class " + typeName + " in " + cls.getName());
        return c;
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private Object value(Spec.Field f, Class<?> param) throws Exception {
        boolean nullable = f.nullableVersions.contains(version);
        if (f.isArray()) {
            if (nullable && rnd.nextInt(6) == 0) return null;
            Collection coll;
            if (param.isAssignableFrom(ArrayList.class)) {
                coll = new ArrayList<>();
            } else {
                coll = (Collection) param.getConstructor().newInstance();
            }
            int n = rnd.nextInt(4);
            String et = f.elementType();
            for (int i = 0; i < n; i++) {
                if (Spec.isPrimitive(et)) {
                    coll.add(primitive(et, false, null));
                } else {
                    coll.add(struct(f));
                }
            }
            return coll;
        }
        if (Spec.isPrimitive(f.type)) {
            return primitive(f.type, nullable, param);
        }
        if (nullable && rnd.nextInt(5) == 0) return null;
        return struct(f);
    }

    private Object struct(Spec.Field f) throws Exception {
        Object o = structClass(f.elementType()).getConstructor().newInstance();
        fill(o, spec.structFields(f));
        return o;
    }

    private boolean edge() {
        return rnd.nextInt(4) == 0;
    }

    private Object primitive(String type, boolean nullable, Class<?> param) {
        switch (type) {
            case "bool":
                return rnd.nextBoolean();
            case "int8": {
                if (edge()) return new byte[]{0, -1, 1, Byte.MIN_VALUE, Byte.MAX_VALUE}[rnd.nextInt(5)];
                return (byte) rnd.nextInt();
            }
            case "int16": {
                if (edge()) return new short[]{0, -1, 1, Short.MIN_VALUE, Short.MAX_VALUE}[rnd.nextInt(5)];
                return (short) rnd.nextInt();
            }
            case "uint16": {
                if (edge()) return new int[]{0, 1, 0x7fff, 0x8000, 0xffff}[rnd.nextInt(5)];
                return rnd.nextInt(0x10000);
            }
            case "int32": {
                if (edge()) return new int[]{0, -1, 1, Integer.MIN_VALUE, Integer.MAX_VALUE}[rnd.nextInt(5)];
                return rnd.nextInt(4) == 0 ? rnd.nextInt(1000) : rnd.nextInt();
            }
            case "uint32": {
                if (edge()) return new long[]{0L, 1L, 0x7fffffffL, 0x80000000L, 0xffffffffL}[rnd.nextInt(5)];
                return rnd.nextLong() & 0xffffffffL;
            }
            case "int64": {
                if (edge()) return new long[]{0L, -1L, 1L, Long.MIN_VALUE, Long.MAX_VALUE}[rnd.nextInt(5)];
                return rnd.nextInt(4) == 0 ? (long) rnd.nextInt(100000) : rnd.nextLong();
            }
            case "float64": {
                if (edge()) {
                    return new double[]{0.0, -0.0, 1.0, -1.5, Double.MAX_VALUE, Double.MIN_VALUE,
                        Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, Double.NaN}[rnd.nextInt(9)];
                }
                return (rnd.nextDouble() - 0.5) * Math.pow(10, rnd.nextInt(40) - 20);
            }
            case "string": {
                if (nullable && rnd.nextInt(5) == 0) return null;
                int n = rnd.nextInt(13);
                char[] cs = new char[n];
                for (int i = 0; i < n; i++) cs[i] = (char) (0x20 + rnd.nextInt(0x5f));
                return new String(cs);
            }
            case "bytes": {
                if (nullable && rnd.nextInt(5) == 0) return null;
                byte[] b = new byte[rnd.nextInt(17)];
                rnd.nextBytes(b);
                if (param != null && param == ByteBuffer.class) return ByteBuffer.wrap(b);
                return b;
            }
            case "uuid": {
                if (edge()) return Uuid.ZERO_UUID;
                return new Uuid(rnd.nextLong(), rnd.nextLong());
            }
            case "records": {
                if (nullable && rnd.nextInt(5) == 0) return null;
                byte[] b = new byte[rnd.nextInt(41)];
                rnd.nextBytes(b);
                return MemoryRecords.readableRecords(ByteBuffer.wrap(b));
            }
            default:
                throw new IllegalStateException("unknown primitive type " + type);
        }
    }
}
