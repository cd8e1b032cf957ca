// result<T>: a value or a module error code, for expected failures.
//
// Modules define `enum class errc` and return `result<T, errc>`. Broken
// invariants are not results: they are FJORD_ASSERT failures (assert.h).
// Any thread may use these types; they own no shared state.
#pragma once

#include <type_traits>
#include <utility>
#include <variant>

#include "base/assert.h"

namespace fjord {

template <typename E>
struct failure {
    E error;
};

template <typename E>
failure<E> fail(E e) {
    return failure<E>{e};
}

template <typename T, typename E>
class [[nodiscard]] result {
public:
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    result(failure<E> f) : v_(std::in_place_index<1>, f.error) {}      // NOLINT

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & {
        FJORD_ASSERT(ok(), "result::value() on an error");
        return std::get<0>(v_);
    }
    const T& value() const& {
        FJORD_ASSERT(ok(), "result::value() on an error");
        return std::get<0>(v_);
    }
    T&& value() && {
        FJORD_ASSERT(ok(), "result::value() on an error");
        return std::get<0>(std::move(v_));
    }
    E error() const {
        FJORD_ASSERT(!ok(), "result::error() on a value");
        return std::get<1>(v_);
    }

    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

private:
    std::variant<T, E> v_;
};

// result<void, E>: success or an error.
template <typename E>
class [[nodiscard]] result<void, E> {
public:
    result() = default;
    result(failure<E> f) : error_(f.error), ok_(false) {}  // NOLINT

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    E error() const {
        FJORD_ASSERT(!ok_, "result::error() on success");
        return error_;
    }

private:
    E error_{};
    bool ok_ = true;
};

}  // namespace fjord
