// Fjord's side of the differential codec test against Kafka's own classes.
//
//   fjord_differential check --in FILE
//       decodes every record Kafka wrote and encodes it again: the bytes must
//       be identical.
//   fjord_differential generate --versions FILE --seed N --count K --out FILE
//       writes K random instances of every (name, version) listed in FILE
//       ("Name min max" per line, as `run.sh versions` prints), for Kafka's
//       `verify` to decode and re-encode.
//
// The record format is described in README.md.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/gen/registry.h"
#include "protocol/gen_random/random.h"

namespace gen = fjord::protocol::gen;
using fjord::shared_bytes;

namespace {

struct record {
    std::string name;
    int16_t version = 0;
    std::vector<uint8_t> body;
};

bool read_records(const std::string& path, std::vector<record>& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::vector<uint8_t> all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t p = 0;
    auto need = [&](size_t n) { return all.size() - p >= n; };
    while (p < all.size()) {
        if (!need(2)) return false;
        size_t nlen = (size_t(all[p]) << 8) | all[p + 1];
        p += 2;
        if (!need(nlen + 6)) return false;
        record r;
        r.name.assign(reinterpret_cast<const char*>(&all[p]), nlen);
        p += nlen;
        r.version = static_cast<int16_t>((all[p] << 8) | all[p + 1]);
        p += 2;
        size_t blen = (size_t(all[p]) << 24) | (size_t(all[p + 1]) << 16) | (size_t(all[p + 2]) << 8) | all[p + 3];
        p += 4;
        if (!need(blen)) return false;
        r.body.assign(all.begin() + static_cast<long>(p), all.begin() + static_cast<long>(p + blen));
        p += blen;
        out.push_back(std::move(r));
    }
    return true;
}

void write_record(std::ofstream& out, std::string_view name, int16_t version, const std::vector<uint8_t>& body) {
    uint8_t h[2] = {uint8_t(name.size() >> 8), uint8_t(name.size())};
    out.write(reinterpret_cast<const char*>(h), 2);
    out.write(name.data(), static_cast<std::streamsize>(name.size()));
    uint8_t v[6] = {uint8_t(uint16_t(version) >> 8), uint8_t(version),          uint8_t(body.size() >> 24),
                    uint8_t(body.size() >> 16),      uint8_t(body.size() >> 8), uint8_t(body.size())};
    out.write(reinterpret_cast<const char*>(v), 6);
    out.write(reinterpret_cast<const char*>(body.data()), static_cast<std::streamsize>(body.size()));
}

std::string hex(const std::vector<uint8_t>& b, size_t max = 64) {
    std::string s;
    char buf[4];
    for (size_t i = 0; i < b.size() && i < max; ++i) {
        std::snprintf(buf, sizeof buf, "%02x", b[i]);
        s += buf;
    }
    if (b.size() > max) s += "...";
    return s;
}

int check(const std::string& path) {
    std::vector<record> records;
    if (!read_records(path, records) || records.empty()) {
        std::fprintf(stderr, "fjord_differential: cannot read records from %s\n", path.c_str());
        return 2;
    }
    size_t passed = 0, failed = 0;
    std::map<std::string, std::pair<size_t, size_t>> per_name;
    for (const auto& r : records) {
        const gen::message_info* m = gen::find_message(r.name);
        bool ok = false;
        std::string why;
        if (m == nullptr) {
            why = "no such message in Fjord";
        } else {
            auto again = m->reencode(shared_bytes::copy_of(r.body), r.version);
            if (!again.ok()) {
                why = std::string("decode/encode failed: ") + fjord::protocol::describe(again.error());
            } else if (*again != r.body) {
                why = "re-encoded bytes differ:\n    kafka " + hex(r.body) + "\n    fjord " + hex(*again);
            } else {
                ok = true;
            }
        }
        auto& counts = per_name[r.name];
        if (ok) {
            ++passed;
            ++counts.first;
        } else {
            if (failed < 20) std::printf("FAIL %s v%d: %s\n", r.name.c_str(), r.version, why.c_str());
            ++failed;
            ++counts.second;
        }
    }
    std::printf("fjord_differential check: %zu messages from Kafka\n", per_name.size());
    std::printf("%zu passed, %zu failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

int generate(const std::string& versions_path, uint64_t seed, int count, const std::string& out_path) {
    std::ifstream in(versions_path);
    if (!in) {
        std::fprintf(stderr, "fjord_differential: cannot read %s\n", versions_path.c_str());
        return 2;
    }
    std::map<std::string_view, const gen::random_info*> randoms;
    for (const auto& ri : gen::all_random()) randoms[ri.name] = &ri;
    std::ofstream out(out_path, std::ios::binary);
    gen::rng g(seed);
    std::string line;
    size_t written = 0, missing = 0;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string name;
        int lo = 0, hi = -1;
        if (!(ls >> name >> lo >> hi)) continue;
        auto it = randoms.find(name);
        if (it == randoms.end()) {
            std::fprintf(stderr, "fjord_differential: Kafka has %s, Fjord does not\n", name.c_str());
            ++missing;
            continue;
        }
        for (int v = lo; v <= hi; ++v) {
            for (int i = 0; i < count; ++i) {
                write_record(out, name, static_cast<int16_t>(v),
                             it->second->random_encoded(g, static_cast<int16_t>(v)));
                ++written;
            }
        }
    }
    std::printf("fjord_differential generate: %zu records\n", written);
    return missing == 0 && written > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::map<std::string, std::string> opt;
    if (argc < 2) {
        std::fprintf(stderr,
                     "usage: fjord_differential check --in FILE | generate --versions F --seed N --count K --out F\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) opt[argv[i]] = argv[i + 1];
    std::string cmd = argv[1];
    if (cmd == "check") return check(opt["--in"]);
    if (cmd == "generate") {
        return generate(opt["--versions"], std::stoull(opt.count("--seed") ? opt["--seed"] : "1"),
                        std::stoi(opt.count("--count") ? opt["--count"] : "3"), opt["--out"]);
    }
    std::fprintf(stderr, "fjord_differential: unknown command %s\n", cmd.c_str());
    return 2;
}
