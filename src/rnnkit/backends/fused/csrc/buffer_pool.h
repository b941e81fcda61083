// Large tensors from a cache of freed blocks rather than fresh pages from the OS.
//
// Why: one training step at B = 64 allocates tens of MB of large buffers (gates, saved
// activations, their gradients) and frees them all at the end. glibc hands blocks that large
// back to the OS (mmap, or trimming the top of the heap), so the next step gets fresh pages and
// pays one page fault, with the kernel zeroing 4 KB, per page it touches: measured at GRU
// B = 64, H = 64, that was about a quarter of a training step. The pool keeps freed blocks and
// hands them out again, so a steady training or inference loop touches only warm memory.
//
// Blocks below kPooledMin bytes come from torch's CPU allocator (the malloc heap reuses those
// without faults). Sizes are rounded up to one of 8 classes per power of two (at most 12.5%
// waste) so that a block freed by one step fits the same request in the next. At most
// limit() bytes stay cached (1 GiB unless set_limit changes it; 0 caches nothing); blocks freed
// beyond that go back to the OS.
#pragma once

#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace rnnkit {

constexpr size_t kPooledMin = size_t(256) << 10;      // 256 KB
constexpr size_t kDefaultCacheLimit = size_t(1) << 30;  // 1 GiB
constexpr size_t kBlockAlignment = 64;                // c10's CPU alignment (a cache line)

class BufferPool final : public c10::Allocator {
 public:
  static BufferPool& instance() {
    // Never destroyed: tensors that outlive static destruction still return their blocks here.
    // Both extension modules include this header (the stream module through gemm.h); gcc emits
    // this static as a unique global symbol (STB_GNU_UNIQUE), so they share one pool.
    static BufferPool* pool = new BufferPool();
    return *pool;
  }

  c10::DataPtr allocate(size_t bytes) override {
    if (bytes < kPooledMin) return c10::GetCPUAllocator()->allocate(bytes);
    const size_t size = size_class(bytes);
    void* block = take(size);
    if (block == nullptr) {
      block = std::aligned_alloc(kBlockAlignment, size + kBlockAlignment);
      TORCH_CHECK(block != nullptr, "rnnkit fused: out of memory allocating ", bytes, " bytes");
      *static_cast<size_t*>(block) = size;  // the header: the block's size class
    }
    void* data = static_cast<char*>(block) + kBlockAlignment;
    return {data, block, &BufferPool::release, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Free every cached block (the tensors still alive keep theirs).
  void empty_cache() { trim_to(0); }

  // Cache at most `bytes` from now on, freeing cached blocks beyond it.
  void set_limit(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = bytes;
    }
    trim_to(bytes);
  }

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_bytes_;
  }

 private:
  BufferPool() {
#if defined(__unix__) || defined(__APPLE__)
    // fork() copies mutex_ as it is: taken by another thread at that instant, it stays taken
    // forever in the child, where that thread does not exist, and the child's first pooled
    // allocation hangs (a DataLoader worker forked while a training thread runs, say). Hold it
    // across fork() so that parent and child both continue with it free.
    pthread_atfork([] { instance().mutex_.lock(); }, [] { instance().mutex_.unlock(); },
                   [] { instance().mutex_.unlock(); });
#endif
  }

  // Round up to 8 classes per power of two: 256K, 288K, 320K, ... 448K, 512K, 576K, ...
  static size_t size_class(size_t bytes) {
    size_t power = kPooledMin;
    while (power * 2 <= bytes) power *= 2;
    const size_t step = power / 8;
    return (bytes + step - 1) / step * step;
  }

  void trim_to(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    while (cached_bytes_ > bytes && !free_.empty()) {
      auto largest = std::prev(free_.end());
      cached_bytes_ -= largest->first;
      std::free(largest->second);
      free_.erase(largest);
    }
  }

  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = free_.find(size);
    if (found == free_.end()) return nullptr;
    void* block = found->second;
    free_.erase(found);
    cached_bytes_ -= size;
    return block;
  }

  static void release(void* block) {
    BufferPool& pool = instance();
    const size_t size = *static_cast<size_t*>(block);
    {
      std::lock_guard<std::mutex> lock(pool.mutex_);
      if (pool.cached_bytes_ + size <= pool.limit_) {
        pool.free_.emplace(size, block);
        pool.cached_bytes_ += size;
        return;
      }
    }
    std::free(block);
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;  // size class -> cached block
  size_t cached_bytes_ = 0;
  size_t limit_ = kDefaultCacheLimit;
};

// Memory a packed weight keeps between packs (PackedMatrix in gemm.h, PackedBf16 in gemm_amx.h):
// a block of the pool, replaced only when a pack needs more bytes than it holds. Not zeroed.
// From a std::vector, a large copy took fresh pages whenever other code's allocations had made
// glibc hand the last block back to the OS (gemm.h has the numbers).
struct PooledBlock {
  c10::DataPtr data;
  size_t bytes = 0;

  // At least `size` bytes, the contents unspecified.
  void* reserve(size_t size) {
    if (data.get() == nullptr || bytes < size) {
      data = BufferPool::instance().allocate(size);
      bytes = size;
    }
    return data.get();
  }
  void release() {
    data.clear();
    bytes = 0;
  }
  void* get() const { return data.get(); }
};

// at::empty, with large buffers from the pool. Same dtype and layout rules as at::empty.
inline at::Tensor pooled_empty(at::IntArrayRef shape, const at::TensorOptions& options) {
  return at::detail::empty_generic(shape, &BufferPool::instance(),
                                   c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), c10::nullopt);
}

// t itself when contiguous, else a contiguous copy in a pooled buffer. Why: the gradient of
// `output.sum()` reaches backward as an expanded (stride-0) tensor, and Tensor::contiguous()
// would copy it into fresh pages every step: ~0.5 ms of page faults for a (100, 64, 32) float
// tensor, 15% of an LSTM training step at that size, against ~20 us warm.
inline at::Tensor pooled_contiguous(const at::Tensor& t) {
  if (t.is_contiguous()) return t;
  return pooled_empty(t.sizes(), t.options()).copy_(t);
}

inline at::Tensor pooled_zeros(at::IntArrayRef shape, const at::TensorOptions& options) {
  return pooled_empty(shape, options).zero_();
}

}  // namespace rnnkit
