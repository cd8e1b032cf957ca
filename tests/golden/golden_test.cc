// Real exchanges between clients (kcat, kafka-python, the Java client) and
// Apache Kafka 4.4, recorded by record_proxy.py: every request and response
// frame decodes (header and body) and encodes again to the same bytes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "protocol/gen/registry.h"
#include "protocol/gen/request_header.h"
#include "protocol/gen/response_header.h"

namespace fjord::protocol::gen {
namespace {

struct frame {
    uint8_t kind;  // 0 request, 1 response
    int16_t api_key;
    int16_t api_version;
    std::vector<uint8_t> payload;
};

std::vector<frame> read_recording(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<frame> out;
    size_t p = 0;
    while (p + 9 <= all.size()) {
        frame f;
        f.kind = all[p];
        f.api_key = static_cast<int16_t>((all[p + 1] << 8) | all[p + 2]);
        f.api_version = static_cast<int16_t>((all[p + 3] << 8) | all[p + 4]);
        size_t n = (size_t(all[p + 5]) << 24) | (size_t(all[p + 6]) << 16) | (size_t(all[p + 7]) << 8) | all[p + 8];
        p += 9;
        if (n > all.size() - p) break;
        f.payload.assign(all.begin() + static_cast<long>(p), all.begin() + static_cast<long>(p + n));
        p += n;
        out.push_back(std::move(f));
    }
    EXPECT_EQ(p, all.size()) << path << " is malformed";
    return out;
}

// Decodes header + body, re-encodes both, and returns the new bytes.
template <typename H>
std::vector<uint8_t> reencode_frame(const frame& f, int16_t header_version, const message_info& body_info,
                                    std::string& why) {
    reader r(shared_bytes::copy_of(f.payload));
    H header;
    header.decode(r, header_version);
    if (!r.ok()) {
        why = std::string("header: ") + describe(r.error());
        return {};
    }
    writer w;
    header.encode(w, header_version);
    auto body = r.slice(r.remaining());
    auto again = body_info.reencode(body, f.api_version);
    if (!again.ok()) {
        why = std::string("body: ") + describe(again.error());
        return {};
    }
    auto out = w.take();
    out.insert(out.end(), again->begin(), again->end());
    return out;
}

void check_recording(const char* file, size_t min_frames, size_t min_apis) {
    auto path = std::filesystem::path("tests/golden/data") / file;
    ASSERT_TRUE(std::filesystem::exists(path)) << path << " (run the tests from the repository root)";
    auto frames = read_recording(path);
    ASSERT_GE(frames.size(), min_frames);
    std::set<int16_t> apis;
    for (const auto& f : frames) {
        const api_info* api = find_api(f.api_key);
        ASSERT_NE(api, nullptr) << "api key " << f.api_key;
        std::string name = std::string(api->name) + (f.kind == 0 ? "Request" : "Response");
        const message_info* body = find_message(name);
        ASSERT_NE(body, nullptr) << name;
        std::string why;
        std::vector<uint8_t> again;
        if (f.kind == 0) {
            again = reencode_frame<request_header>(f, request_header_version(*api, f.api_version), *body, why);
        } else {
            again = reencode_frame<response_header>(f, response_header_version(*api, f.api_version), *body, why);
        }
        ASSERT_TRUE(why.empty()) << file << ": " << name << " v" << f.api_version << ": " << why;
        ASSERT_EQ(again, f.payload) << file << ": " << name << " v" << f.api_version;
        apis.insert(f.api_key);
    }
    EXPECT_GE(apis.size(), min_apis) << file;
}

TEST(golden, kcat_exchanges_reencode_byte_identically) {
    check_recording("kcat.bin", 100, 10);
}
TEST(golden, kafka_python_exchanges_reencode_byte_identically) {
    check_recording("kafka-python.bin", 100, 15);
}
TEST(golden, java_client_exchanges_reencode_byte_identically) {
    check_recording("java.bin", 100, 18);
}

}  // namespace
}  // namespace fjord::protocol::gen
