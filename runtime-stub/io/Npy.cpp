#include "runtime-stub/io/Npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln {
namespace rt {
namespace {

struct DescrEntry {
  const char *descr;
  DType dtype;
};
const DescrEntry kDescrs[] = {
    {"<f4", DType::Float32}, {"<i8", DType::Int64}, {"|b1", DType::Bool},
    {"<i4", DType::Int32},   {"<f2", DType::Float16}, {"|i1", DType::Int8},
    {"|u1", DType::UInt8},
};

Error npyError(const std::string &m) { return invalidArgument("npy: " + m); }

// A tiny parser for the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
struct HeaderParser {
  const char *p;
  const char *end;
  void skipSpace() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
      ++p;
  }
  bool consume(char c) {
    skipSpace();
    if (p < end && *p == c) {
      ++p;
      return true;
    }
    return false;
  }
  bool parseString(std::string *out) {
    skipSpace();
    if (p >= end || (*p != '\'' && *p != '"'))
      return false;
    char q = *p++;
    const char *s = p;
    while (p < end && *p != q)
      ++p;
    if (p >= end)
      return false;
    out->assign(s, (size_t)(p - s));
    ++p;
    return true;
  }
  bool parseIdent(std::string *out) {
    skipSpace();
    const char *s = p;
    while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
      ++p;
    out->assign(s, (size_t)(p - s));
    return !out->empty();
  }
  bool parseInt(int64_t *out) {
    skipSpace();
    const char *s = p;
    int64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
        return false;
      ++p;
    }
    // Accept a trailing 'L' (Python 2 longs).
    if (p < end && *p == 'L')
      ++p;
    *out = v;
    return p > s;
  }
};

} // namespace

Result<Tensor> parseNpy(const void *data, size_t size) {
  const uint8_t *b = static_cast<const uint8_t *>(data);
  if (size < 10 || std::memcmp(b, "\x93NUMPY", 6) != 0)
    return npyError("not a .npy file (bad magic)");
  uint8_t major = b[6];
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = (size_t)b[8] | ((size_t)b[9] << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12)
      return npyError("truncated header");
    headerLen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
    headerStart = 12;
  } else {
    return npyError("unsupported format version " + std::to_string(major));
  }
  if (headerLen > size - headerStart)
    return npyError("header length " + std::to_string(headerLen) + " runs past the end of the file");
  HeaderParser hp{reinterpret_cast<const char *>(b + headerStart),
                  reinterpret_cast<const char *>(b + headerStart + headerLen)};
  std::string descr;
  bool haveDescr = false, haveOrder = false, haveShape = false, fortran = false;
  std::vector<int64_t> dims;
  if (!hp.consume('{'))
    return npyError("header is not a dict");
  while (!hp.consume('}')) {
    std::string key;
    if (!hp.parseString(&key) || !hp.consume(':'))
      return npyError("malformed header dict");
    if (key == "descr") {
      if (!hp.parseString(&descr))
        return npyError("malformed 'descr' (structured dtypes are not supported)");
      haveDescr = true;
    } else if (key == "fortran_order") {
      std::string v;
      if (!hp.parseIdent(&v) || (v != "True" && v != "False"))
        return npyError("malformed 'fortran_order'");
      fortran = v == "True";
      haveOrder = true;
    } else if (key == "shape") {
      if (!hp.consume('('))
        return npyError("malformed 'shape'");
      while (!hp.consume(')')) {
        int64_t d;
        if (!hp.parseInt(&d))
          return npyError("malformed 'shape'");
        dims.push_back(d);
        if (dims.size() > (size_t)kMaxRank)
          return npyError("rank " + std::to_string(dims.size()) + " exceeds the maximum " +
                          std::to_string(kMaxRank));
        if (!hp.consume(',')) {
          if (!hp.consume(')'))
            return npyError("malformed 'shape'");
          break;
        }
      }
      haveShape = true;
    } else {
      return npyError("unknown header key '" + key + "'");
    }
    if (!hp.consume(',')) {
      if (!hp.consume('}'))
        return npyError("malformed header dict");
      break;
    }
  }
  if (!haveDescr || !haveOrder || !haveShape)
    return npyError("header lacks descr, fortran_order or shape");
  if (fortran)
    return npyError("fortran_order arrays are not supported (save a C-contiguous array, "
                    "e.g. np.ascontiguousarray)");
  DType dt = DType::Unknown;
  for (const DescrEntry &e : kDescrs)
    if (descr == e.descr)
      dt = e.dtype;
  if (dt == DType::Unknown) {
    std::string hint;
    if (descr == "<f8")
      hint = " (float64: convert with .astype(np.float32))";
    else if (!descr.empty() && descr[0] == '>')
      hint = " (big-endian data is not supported)";
    return npyError("unsupported dtype '" + descr + "'" + hint +
                    "; supported: <f4 <i8 |b1 <i4 <f2 |i1 |u1");
  }
  Result<Shape> shape = Shape::make(dims);
  if (!shape.ok())
    return npyError(shape.error().message());
  uint64_t need = (uint64_t)shape->numel() * dtypeSize(dt);
  size_t dataStart = headerStart + headerLen;
  if (need != size - dataStart)
    return npyError("data is " + std::to_string(size - dataStart) + " bytes, shape " +
                    shape->str() + " of " + descr + " needs " + std::to_string(need));
  return Tensor::fromBytes(dt, *shape, b + dataStart, (size_t)need);
}

Result<Tensor> readNpy(const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return ioError("cannot open " + path + ": " + std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
    bytes.insert(bytes.end(), buf, buf + n);
  bool err = std::ferror(f);
  std::fclose(f);
  if (err)
    return ioError("cannot read " + path);
  Result<Tensor> t = parseNpy(bytes.data(), bytes.size());
  if (!t.ok())
    return t.error().withContext(path);
  return t;
}

Result<std::vector<uint8_t>> encodeNpy(const Tensor &t) {
  const char *descr = nullptr;
  for (const DescrEntry &e : kDescrs)
    if (t.dtype() == e.dtype)
      descr = e.descr;
  if (!descr)
    return unsupported(std::string("npy: cannot write dtype ") + dtypeName(t.dtype()));
  std::string shape = "(";
  for (int i = 0; i < t.rank(); ++i)
    shape += std::to_string(t.dim(i)) + (t.rank() == 1 ? "," : (i + 1 < t.rank() ? ", " : ""));
  shape += ")";
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so that magic + len + header + '\n' is a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::vector<uint8_t> out;
  out.reserve(10 + header.size() + t.nbytes());
  const uint8_t magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.insert(out.end(), magic, magic + 8);
  out.push_back((uint8_t)(header.size() & 0xff));
  out.push_back((uint8_t)(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  const uint8_t *d = t.dataAs<uint8_t>();
  if (t.nbytes())
    out.insert(out.end(), d, d + t.nbytes());
  return out;
}

Error writeNpy(const std::string &path, const Tensor &t) {
  Result<std::vector<uint8_t>> bytes = encodeNpy(t);
  if (!bytes.ok())
    return bytes.error();
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return ioError("cannot create " + tmp + ": " + std::strerror(errno));
  const uint8_t *p = bytes->data();
  size_t left = bytes->size();
  while (left) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return ioError("cannot write " + tmp + ": " + std::strerror(e));
    }
    p += w;
    left -= (size_t)w;
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return ioError("cannot write " + path + ": " + std::strerror(e));
  }
  return Error::success();
}

} // namespace rt
} // namespace kiln
