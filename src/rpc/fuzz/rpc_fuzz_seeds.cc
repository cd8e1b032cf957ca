// Writes seed corpora for the RPC fuzz targets:
//   rpc_fuzz_seeds frame DIR   whole frames (header + body) of random Raft
//                              envelopes of every kind and of every request
//                              and response, for rpc_frame_fuzz
//   rpc_fuzz_seeds raft DIR    a message byte and a Raft body, for raft_codec_fuzz
#include <cstdio>
#include <fstream>
#include <string>

#include "rpc/frame.h"
#include "rpc/gen/registry.h"
#include "rpc/gen_random/random.h"
#include "rpc/raft_codec.h"
#include "rpc/raft_test_util.h"

using namespace fjord;
using namespace fjord::rpc;

namespace {

void put(const std::string& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A frame without its size prefix.
std::vector<uint8_t> frame_of(int16_t key, frame_kind kind, const std::vector<uint8_t>& body) {
    gen::rpc_header h;
    h.api_key = key;
    h.kind = static_cast<int8_t>(kind);
    h.correlation_id = 7;
    h.source_node_id = 1;
    h.destination_node_id = 2;
    h.cluster_id = "fuzz";
    protocol::writer w;
    begin_frame(w, h);
    w.raw(body.data(), body.size());
    finish_frame(w);
    auto bytes = w.take();
    return std::vector<uint8_t>(bytes.begin() + 4, bytes.end());
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: rpc_fuzz_seeds frame|raft DIR\n");
        return 2;
    }
    std::string kind = argv[1], dir = argv[2];
    size_t n = 0;
    test_util::envelope_maker mk(1);
    for (int i = 0; i < 9 * 4; ++i) {
        auto e = mk.make(i % 9, raft::node_id(1), raft::node_id(2));
        auto api = raft_api(e);
        auto body = encode_raft(e);
        std::vector<uint8_t> input;
        if (kind == "raft") {
            input.push_back(static_cast<uint8_t>(api.key));
            input.insert(input.end(), body.begin(), body.end());
        } else {
            input = frame_of(api.key, frame_kind::one_way, body);
        }
        put(dir, "raft-" + std::to_string(api.key) + "-" + std::to_string(i), input);
        ++n;
    }
    if (kind == "frame") {
        gen::rng g(1);
        for (const auto& r : gen::all_random()) {
            const gen::message_info* m = gen::find_message(r.name);
            if (m == nullptr) return 1;
            if (m->kind != gen::message_kind::request && m->kind != gen::message_kind::response) continue;
            auto fk = m->kind == gen::message_kind::request ? frame_kind::request : frame_kind::response;
            for (int i = 0; i < 4; ++i) {
                put(dir, std::string(m->name) + "-" + std::to_string(i),
                    frame_of(m->api_key, fk, r.random_encoded(g, 0)));
                ++n;
            }
        }
    }
    std::printf("rpc_fuzz_seeds: %zu %s seeds in %s\n", n, kind.c_str(), dir.c_str());
    return 0;
}
