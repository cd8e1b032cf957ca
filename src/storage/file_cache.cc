#include "storage/file_cache.h"

#include "base/assert.h"

namespace fjord::storage {

file_cache::~file_cache() {
    FJORD_ASSERT(open_ == 0, "file_cache destroyed with {} files open", open_);
}

void file_cache::unlink(slot& s) {
    if (s.prev) s.prev->next = s.next;
    if (s.next) s.next->prev = s.prev;
    if (head_ == &s) head_ = s.next;
    if (tail_ == &s) tail_ = s.prev;
    s.prev = s.next = nullptr;
}

void file_cache::push_front(slot& s) {
    s.prev = nullptr;
    s.next = head_;
    if (head_) head_->prev = &s;
    head_ = &s;
    if (!tail_) tail_ = &s;
}

result<std::shared_ptr<file>, errc> file_cache::get(slot& s, const std::string& path, open_mode mode) {
    if (s.f) {
        if (head_ != &s) {
            unlink(s);
            push_front(s);
        }
        return s.f;
    }
    while (open_ >= max_open_ && tail_) forget(*tail_);
    auto f = fs_.open(path, mode);
    if (!f) return fail(f.error());
    s.f = std::move(f).value();
    push_front(s);
    ++open_;
    return s.f;
}

void file_cache::forget(slot& s) {
    if (!s.f) return;
    unlink(s);
    s.f.reset();
    FJORD_ASSERT(open_ > 0, "file_cache open count underflow");
    --open_;
}

}  // namespace fjord::storage
