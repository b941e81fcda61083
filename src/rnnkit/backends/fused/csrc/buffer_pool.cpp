// torch ops that control the buffer pool of buffer_pool.h from Python.
#include <torch/library.h>

#include "buffer_pool.h"

namespace rnnkit {
namespace {

void set_buffer_cache_limit(int64_t bytes) {
  TORCH_CHECK(bytes >= 0, "rnnkit: the buffer cache limit must be >= 0 bytes, got ", bytes);
  BufferPool::instance().set_limit(static_cast<size_t>(bytes));
}

int64_t buffer_cache_bytes() { return static_cast<int64_t>(BufferPool::instance().cached_bytes()); }

void empty_buffer_cache() { BufferPool::instance().empty_cache(); }

}  // namespace
}  // namespace rnnkit

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("set_buffer_cache_limit(int bytes) -> ()");
  m.def("buffer_cache_bytes() -> int");
  m.def("empty_buffer_cache() -> ()");
}

TORCH_LIBRARY_IMPL(rnnkit, CatchAll, m) {
  m.impl("set_buffer_cache_limit", &rnnkit::set_buffer_cache_limit);
  m.impl("buffer_cache_bytes", &rnnkit::buffer_cache_bytes);
  m.impl("empty_buffer_cache", &rnnkit::empty_buffer_cache);
}
