// The fjord binary: the broker (`fjord start`) and, later, the command line.
#include <cstdio>
#include <cstring>

#include "protocol/gen/registry.h"

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "version") == 0) {
        std::printf("fjord 0.1.0 (%zu Kafka APIs decodable)\n", fjord::protocol::gen::all_apis().size());
        return 0;
    }
    std::fprintf(stderr,
                 "fjord: the broker is not there yet. This build has the protocol layer only;\n"
                 "the single-node broker arrives with the server issue.\n");
    return 1;
}
