// Batches written by real producers (librdkafka, kafka-python, the Java
// client) for every codec, as a Kafka broker stored them in a segment file:
// every batch must parse, validate, decompress and give back the records the
// producer sent (tests/data/batches/README.md). Run from the repository root.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/record_batch.h"

namespace fjord::protocol {
namespace {

const std::filesystem::path data_dir = "tests/data/batches";

// ---------------------------------------------------------------------------
// A minimal JSON reader: enough for the expected-records files.

struct json {
    enum class kind { null, boolean, number, string, array, object } k = kind::null;
    bool b = false;
    double num = 0;
    std::string s;
    std::vector<json> items;
    std::vector<std::pair<std::string, json>> members;

    const json& operator[](const std::string& key) const {
        for (const auto& [k2, v] : members)
            if (k2 == key) return v;
        static const json missing;
        ADD_FAILURE() << "missing JSON member " << key;
        return missing;
    }
    int64_t integer() const { return static_cast<int64_t>(num); }
};

class json_parser {
public:
    explicit json_parser(const std::string& text) : t_(text) {}
    bool parse(json& out) {
        bool ok = value(out);
        ws();
        return ok && i_ == t_.size();
    }

private:
    void ws() {
        while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\r' || t_[i_] == '\t')) ++i_;
    }
    bool lit(const char* w) {
        size_t n = std::char_traits<char>::length(w);
        if (t_.compare(i_, n, w) != 0) return false;
        i_ += n;
        return true;
    }
    static void utf8(std::string& s, uint32_t cp) {
        if (cp < 0x80) {
            s += static_cast<char>(cp);
        } else if (cp < 0x800) {
            s += static_cast<char>(0xc0 | (cp >> 6));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            s += static_cast<char>(0xe0 | (cp >> 12));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            s += static_cast<char>(0xf0 | (cp >> 18));
            s += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            s += static_cast<char>(0x80 | (cp & 0x3f));
        }
    }
    bool hex4(uint32_t& v) {
        if (i_ + 4 > t_.size()) return false;
        v = static_cast<uint32_t>(std::stoul(t_.substr(i_, 4), nullptr, 16));
        i_ += 4;
        return true;
    }
    bool string(std::string& out) {
        if (t_[i_] != '"') return false;
        ++i_;
        while (i_ < t_.size() && t_[i_] != '"') {
            char c = t_[i_++];
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i_ >= t_.size()) return false;
            char e = t_[i_++];
            switch (e) {
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'u': {
                    uint32_t cp;
                    if (!hex4(cp)) return false;
                    if (cp >= 0xd800 && cp < 0xdc00 && lit("\\u")) {
                        uint32_t lo;
                        if (!hex4(lo)) return false;
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    }
                    utf8(out, cp);
                    break;
                }
                default: out += e; break;
            }
        }
        if (i_ >= t_.size()) return false;
        ++i_;
        return true;
    }
    bool value(json& out) {
        ws();
        if (i_ >= t_.size()) return false;
        char c = t_[i_];
        if (c == '{') {
            out.k = json::kind::object;
            ++i_;
            ws();
            if (t_[i_] == '}') return ++i_, true;
            for (;;) {
                ws();
                std::string key;
                if (!string(key)) return false;
                ws();
                if (t_[i_++] != ':') return false;
                json v;
                if (!value(v)) return false;
                out.members.emplace_back(std::move(key), std::move(v));
                ws();
                if (t_[i_] == ',') {
                    ++i_;
                    continue;
                }
                if (t_[i_] == '}') return ++i_, true;
                return false;
            }
        }
        if (c == '[') {
            out.k = json::kind::array;
            ++i_;
            ws();
            if (t_[i_] == ']') return ++i_, true;
            for (;;) {
                json v;
                if (!value(v)) return false;
                out.items.push_back(std::move(v));
                ws();
                if (t_[i_] == ',') {
                    ++i_;
                    continue;
                }
                if (t_[i_] == ']') return ++i_, true;
                return false;
            }
        }
        if (c == '"') {
            out.k = json::kind::string;
            return string(out.s);
        }
        if (lit("null")) return out.k = json::kind::null, true;
        if (lit("true")) return out.k = json::kind::boolean, out.b = true, true;
        if (lit("false")) return out.k = json::kind::boolean, out.b = false, true;
        size_t used = 0;
        out.k = json::kind::number;
        out.num = std::stod(t_.substr(i_, 32), &used);
        i_ += used;
        return used > 0;
    }

    const std::string& t_;
    size_t i_ = 0;
};

std::string slurp(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::optional<std::string> text(const nullable_bytes& b) {
    if (!b) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(b->data()), b->size());
}
std::optional<std::string> text(const json& j) {
    if (j.k == json::kind::null) return std::nullopt;
    return j.s;
}

struct seen_record {
    int64_t offset;
    std::optional<std::string> key, value;
    std::vector<std::pair<std::string, std::optional<std::string>>> headers;
    friend bool operator==(const seen_record&, const seen_record&) = default;
};

std::ostream& operator<<(std::ostream& os, const seen_record& r) {
    os << "{offset " << r.offset << " key " << r.key.value_or("<null>") << " value "
       << (r.value ? r.value->substr(0, 40) : "<null>") << " headers " << r.headers.size() << "}";
    return os;
}

TEST(recorded_batches, every_client_and_codec) {
    std::vector<std::filesystem::path> logs;
    if (std::filesystem::is_directory(data_dir)) {
        for (const auto& e : std::filesystem::directory_iterator(data_dir)) {
            if (e.path().extension() == ".log") logs.push_back(e.path());
        }
    }
    std::sort(logs.begin(), logs.end());
    ASSERT_GE(logs.size(), 15u) << "expected 3 clients x 5 codecs under " << data_dir
                                << " (run the tests from the repository root)";

    std::map<std::string, int> codecs_seen;
    for (const auto& log : logs) {
        SCOPED_TRACE(log.string());
        auto json_path = log;
        json_path.replace_extension(".json");
        json expected;
        std::string json_text = slurp(json_path);
        ASSERT_FALSE(json_text.empty()) << json_path;
        ASSERT_TRUE(json_parser(json_text).parse(expected)) << json_path;
        const std::string codec_expected = expected["codec"].s;

        std::string bytes = slurp(log);
        ASSERT_FALSE(bytes.empty());
        batch_splitter split(shared_bytes::copy_of(std::string_view(bytes)));
        const auto& batches = expected["batches"].items;
        std::vector<seen_record> seen;
        std::vector<uint8_t> scratch;
        size_t index = 0;
        while (auto batch = split.next()) {
            SCOPED_TRACE("batch " + std::to_string(index));
            auto v = batch->validate_all(scratch);
            ASSERT_TRUE(v.ok()) << describe(v.error());
            EXPECT_EQ(codec_name(batch->compression()), codec_expected);
            ASSERT_LT(index, batches.size());
            const json& b = batches[index];
            EXPECT_EQ(batch->base_offset(), b["base_offset"].integer());
            EXPECT_EQ(batch->record_count(), b["records"].integer());
            EXPECT_EQ(static_cast<int64_t>(batch->size()), b["bytes"].integer());
            EXPECT_EQ(batch->attributes(), b["attributes"].integer());
            EXPECT_EQ(batch->producer_id(), b["producer_id"].integer());
            EXPECT_EQ(batch->producer_epoch(), b["producer_epoch"].integer());
            EXPECT_EQ(batch->base_sequence(), b["base_sequence"].integer());

            auto payload = batch->payload(scratch);
            ASSERT_TRUE(payload.ok());
            record_reader rr = batch->records(*payload);
            record_view rv;
            while (rr.next(rv)) {
                seen_record r{batch->offset_of(rv), text(rv.key), text(rv.value), {}};
                header_reader hr = rv.headers();
                header_view h;
                while (hr.next(h)) r.headers.emplace_back(std::string(h.key), text(h.value));
                seen.push_back(std::move(r));
            }
            ASSERT_TRUE(rr.ok()) << describe(rr.error());
            ++index;
        }
        EXPECT_TRUE(split.clean_end());
        EXPECT_EQ(index, batches.size());

        std::vector<seen_record> want;
        for (const json& r : expected["records"].items) {
            seen_record w{r["offset"].integer(), text(r["key"]), text(r["value"]), {}};
            for (const json& h : r["headers"].items) {
                EXPECT_EQ(h.items.size(), 2u);
                if (h.items.size() == 2) w.headers.emplace_back(h.items[0].s, text(h.items[1]));
            }
            want.push_back(std::move(w));
        }
        EXPECT_EQ(want.size(), 20u);
        EXPECT_EQ(seen, want);
        ++codecs_seen[codec_expected];
    }
    for (const char* c : {"none", "gzip", "snappy", "lz4", "zstd"}) {
        EXPECT_GE(codecs_seen[c], 3) << c;
    }
}

}  // namespace
}  // namespace fjord::protocol
