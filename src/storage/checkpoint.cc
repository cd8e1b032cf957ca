#include "storage/checkpoint.h"

#include <charconv>

#include <fmt/format.h>

namespace fjord::storage {

std::string topic_partition::dir_name() const {
    return fmt::format("{}-{}", topic, partition);
}

bool topic_partition::from_dir_name(std::string_view name, topic_partition& out) {
    auto dash = name.rfind('-');
    if (dash == std::string_view::npos || dash == 0 || dash + 1 == name.size()) return false;
    int32_t p = 0;
    auto digits = name.substr(dash + 1);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p);
    if (ec != std::errc{} || ptr != digits.data() + digits.size() || p < 0) return false;
    out.topic = std::string(name.substr(0, dash));
    out.partition = p;
    return true;
}

namespace {

// Splits on '\n', tolerating a trailing newline and "\r\n".
std::vector<std::string_view> lines_of(std::string_view text) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        auto line = text.substr(start, end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        out.push_back(line);
        start = end + 1;
    }
    return out;
}

std::vector<std::string_view> fields_of(std::string_view line) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        size_t j = i;
        while (j < line.size() && line[j] != ' ') ++j;
        if (j > i) out.push_back(line.substr(i, j - i));
        i = j;
    }
    return out;
}

template <typename T>
bool to_int(std::string_view s, T& out) {
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && ptr == s.data() + s.size();
}

// Checks "0", "<count>" and returns the entry lines.
result<std::vector<std::string_view>, errc> checkpoint_body(std::string_view text) {
    auto lines = lines_of(text);
    int64_t version = -1, count = -1;
    if (lines.size() < 2 || !to_int(lines[0], version) || version != 0 || !to_int(lines[1], count) || count < 0)
        return fail(errc::bad_checkpoint);
    if (static_cast<size_t>(count) != lines.size() - 2) return fail(errc::bad_checkpoint);
    return std::vector<std::string_view>(lines.begin() + 2, lines.end());
}

}  // namespace

std::string format_offset_checkpoint(std::span<const offset_entry> entries) {
    std::string s = fmt::format("0\n{}\n", entries.size());
    for (const auto& e : entries) s += fmt::format("{} {} {}\n", e.tp.topic, e.tp.partition, e.offset);
    return s;
}

result<std::vector<offset_entry>, errc> parse_offset_checkpoint(std::string_view text) {
    auto body = checkpoint_body(text);
    if (!body) return fail(body.error());
    std::vector<offset_entry> out;
    for (auto line : *body) {
        auto f = fields_of(line);
        offset_entry e;
        if (f.size() != 3 || !to_int(f[1], e.tp.partition) || !to_int(f[2], e.offset) || e.tp.partition < 0)
            return fail(errc::bad_checkpoint);
        e.tp.topic = std::string(f[0]);
        out.push_back(std::move(e));
    }
    return out;
}

std::string format_epoch_checkpoint(std::span<const epoch_entry> entries) {
    std::string s = fmt::format("0\n{}\n", entries.size());
    for (const auto& e : entries) s += fmt::format("{} {}\n", e.epoch, e.start_offset);
    return s;
}

result<std::vector<epoch_entry>, errc> parse_epoch_checkpoint(std::string_view text) {
    auto body = checkpoint_body(text);
    if (!body) return fail(body.error());
    std::vector<epoch_entry> out;
    for (auto line : *body) {
        auto f = fields_of(line);
        epoch_entry e;
        if (f.size() != 2 || !to_int(f[0], e.epoch) || !to_int(f[1], e.start_offset) || e.epoch < 0 ||
            e.start_offset < 0)
            return fail(errc::bad_checkpoint);
        // Epochs and start offsets only grow.
        if (!out.empty() && (e.epoch <= out.back().epoch || e.start_offset < out.back().start_offset))
            return fail(errc::bad_checkpoint);
        out.push_back(e);
    }
    return out;
}

namespace {
constexpr char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}
}  // namespace

std::string uuid_to_base64url(const uuid& id) {
    std::string s;
    uint32_t acc = 0;
    int bits = 0;
    for (uint8_t b : id) {
        acc = (acc << 8) | b;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            s += b64url[(acc >> bits) & 63];
        }
    }
    if (bits > 0) s += b64url[(acc << (6 - bits)) & 63];
    return s;
}

result<uuid, errc> uuid_from_base64url(std::string_view s) {
    if (s.size() != 22) return fail(errc::bad_checkpoint);
    uuid id{};
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (char c : s) {
        int v = b64_value(c);
        if (v < 0) return fail(errc::bad_checkpoint);
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < id.size()) id[n++] = static_cast<uint8_t>(acc >> bits);
        }
    }
    if (n != id.size()) return fail(errc::bad_checkpoint);
    return id;
}

std::string format_partition_metadata(const uuid& topic_id) {
    return fmt::format("version: 0\ntopic_id: {}\n", uuid_to_base64url(topic_id));
}

result<uuid, errc> parse_partition_metadata(std::string_view text) {
    auto lines = lines_of(text);
    if (lines.size() < 2) return fail(errc::bad_checkpoint);
    constexpr std::string_view v = "version: ", t = "topic_id: ";
    if (lines[0].substr(0, v.size()) != v || lines[0].substr(v.size()) != "0") return fail(errc::bad_checkpoint);
    if (lines[1].substr(0, t.size()) != t) return fail(errc::bad_checkpoint);
    return uuid_from_base64url(lines[1].substr(t.size()));
}

std::string format_properties(const std::map<std::string, std::string>& props) {
    std::string s = "#\n";
    for (const auto& [k, v] : props) s += fmt::format("{}={}\n", k, v);
    return s;
}

result<std::map<std::string, std::string>, errc> parse_properties(std::string_view text) {
    std::map<std::string, std::string> out;
    for (auto line : lines_of(text)) {
        if (line.empty() || line[0] == '#' || line[0] == '!') continue;
        auto eq = line.find('=');
        if (eq == std::string_view::npos) return fail(errc::bad_checkpoint);
        out[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    }
    return out;
}

}  // namespace fjord::storage
