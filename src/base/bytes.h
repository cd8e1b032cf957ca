// shared_bytes: an immutable slice of a reference-counted byte buffer.
//
// The network layer reads a frame into one buffer; decoded messages keep
// slices of it (record batches, opaque byte fields) instead of copying. A slice
// keeps its whole buffer alive. Copying a slice copies a pointer and bumps a
// reference count; the bytes are never copied. The reference count is atomic,
// so a slice may move between shards, but the bytes are never mutated after
// construction, so concurrent readers are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "base/assert.h"

namespace fjord {

class shared_bytes {
public:
    shared_bytes() = default;

    // Takes ownership of `v` without copying its bytes.
    static shared_bytes adopt(std::vector<uint8_t> v) {
        auto owner = std::make_shared<std::vector<uint8_t>>(std::move(v));
        const uint8_t* p = owner->data();
        size_t n = owner->size();
        return shared_bytes(std::move(owner), p, n);
    }
    static shared_bytes copy_of(std::span<const uint8_t> s) { return adopt(std::vector<uint8_t>(s.begin(), s.end())); }
    static shared_bytes copy_of(std::string_view s) {
        auto p = reinterpret_cast<const uint8_t*>(s.data());
        return adopt(std::vector<uint8_t>(p, p + s.size()));
    }

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    std::span<const uint8_t> span() const { return {data_, size_}; }
    uint8_t operator[](size_t i) const {
        FJORD_ASSERT(i < size_, "index {} out of {}", i, size_);
        return data_[i];
    }

    // A sub-slice sharing the same buffer.
    shared_bytes slice(size_t offset, size_t length) const {
        FJORD_ASSERT(offset <= size_ && length <= size_ - offset, "slice [{}, +{}) of {}", offset, length, size_);
        return shared_bytes(owner_, data_ + offset, length);
    }

    friend bool operator==(const shared_bytes& a, const shared_bytes& b) {
        return a.size_ == b.size_ && (a.size_ == 0 || std::equal(a.data_, a.data_ + a.size_, b.data_));
    }

private:
    shared_bytes(std::shared_ptr<const void> owner, const uint8_t* p, size_t n)
        : owner_(std::move(owner)), data_(p), size_(n) {}

    std::shared_ptr<const void> owner_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace fjord
