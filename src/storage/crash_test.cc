// kill -9 of a real writer process at random points: after each kill the
// log recovers, holds every offset the writer reported durable, and serves
// only valid batches; the next writer continues on the recovered log.
// kill -9 keeps the page cache, so this is a recovery test: it cannot show a
// missing fsync. Power loss is the simulated file system's job (model_test).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "protocol/record_batch.h"
#include "storage/log.h"
#include "storage/log_manager.h"

extern char** environ;

namespace fjord::storage {
namespace {

TEST(storage_crash, kill_minus_nine_at_random_points) {
    const std::string dir = std::filesystem::temp_directory_path() / ("fjord-crash-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::mt19937_64 rng(42);
    int64_t durable = 0;
    for (int round = 0; round < 8; ++round) {
        int pipefd[2];
        ASSERT_EQ(::pipe(pipefd), 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
        posix_spawn_file_actions_addclose(&fa, pipefd[0]);
        std::string tool = STORAGE_TOOL_PATH;
        char* args[] = {tool.data(), const_cast<char*>("crash-writer"), const_cast<char*>(dir.c_str()), nullptr};
        pid_t pid = 0;
        ASSERT_EQ(posix_spawn(&pid, tool.c_str(), &fa, nullptr, args, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        ::close(pipefd[1]);
        FILE* out = ::fdopen(pipefd[0], "r");
        // Let it run a random while, reading what it reports durable.
        const int lines_wanted = 5 + static_cast<int>(rng() % 400);
        char line[128];
        int lines = 0;
        while (lines < lines_wanted && std::fgets(line, sizeof line, out)) {
            long v = 0;
            if (std::sscanf(line, "durable %ld", &v) == 1) durable = v;
            if (std::sscanf(line, "start %ld", &v) == 1) {
                EXPECT_GE(v, durable) << "round " << round;
            }
            ++lines;
        }
        ::kill(pid, SIGKILL);
        // Whatever it printed before dying counts too.
        while (std::fgets(line, sizeof line, out)) {
            long v = 0;
            if (std::sscanf(line, "durable %ld", &v) == 1) durable = v;
        }
        std::fclose(out);
        int status = 0;
        ::waitpid(pid, &status, 0);
        ASSERT_GT(durable, 0);

        log_manager_config mc;
        mc.dir = dir;
        auto m = log_manager::open(posix_file_system(), mc, 0);
        ASSERT_TRUE(m.ok());
        ASSERT_TRUE((*m)->offline().empty());
        log* l = (*m)->get({"crash", 0});
        ASSERT_TRUE(l);
        EXPECT_GE(l->end_offset(), durable) << "round " << round;
        int64_t o = 0, records = 0;
        while (o < l->end_offset()) {
            auto r = l->read(o, 1 << 20, INT64_MAX);
            ASSERT_TRUE(r.ok()) << l->offline_detail();
            for (const auto& c : r->chunks) {
                protocol::batch_splitter s(c);
                while (auto b = s.next()) {
                    ASSERT_TRUE(b->crc_ok());
                    records += b->record_count();
                }
            }
            o = r->next_offset;
        }
        EXPECT_EQ(records, l->end_offset());
        // Alternate clean and unclean starts for the next writer.
        if (round % 2 == 0) {
            ASSERT_TRUE((*m)->shutdown().ok());
        }
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fjord::storage
