// Writes seed corpora covering every (API key, version) and every message:
//   fuzz_seeds request DIR   request frames (header + body) for request_fuzz
//   fuzz_seeds message DIR   inputs for message_fuzz
#include <cstdio>
#include <fstream>
#include <string>

#include "protocol/gen/registry.h"
#include "protocol/gen/request_header.h"
#include "protocol/gen_random/random.h"

using namespace fjord::protocol;

namespace {

void put(const std::string& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: fuzz_seeds request|message DIR\n");
        return 2;
    }
    std::string kind = argv[1], dir = argv[2];
    gen::rng g(1);
    size_t n = 0;
    auto all = gen::all_messages();
    for (size_t i = 0; i < all.size(); ++i) {
        const auto& m = all[i];
        const gen::random_info* ri = nullptr;
        for (const auto& r : gen::all_random()) {
            if (r.name == m.name) ri = &r;
        }
        if (ri == nullptr) return 1;
        for (int16_t v = m.min_version; v <= m.max_version; ++v) {
            auto body = ri->random_encoded(g, v);
            std::vector<uint8_t> input;
            if (kind == "message") {
                input = {uint8_t(i >> 8), uint8_t(i), uint8_t(uint16_t(v) >> 8), uint8_t(v)};
            } else if (m.kind == gen::message_kind::request) {
                const gen::api_info* api = gen::find_api(m.api_key);
                gen::request_header h;
                h.request_api_key = m.api_key;
                h.request_api_version = v;
                h.correlation_id = static_cast<int32_t>(n);
                h.client_id = "fuzz";
                writer w;
                h.encode(w, gen::request_header_version(*api, v));
                input = w.take();
            } else {
                continue;
            }
            input.insert(input.end(), body.begin(), body.end());
            put(dir, std::string(m.name) + "-v" + std::to_string(v), input);
            ++n;
        }
    }
    std::printf("fuzz_seeds: %zu %s seeds in %s\n", n, kind.c_str(), dir.c_str());
    return 0;
}
