#pragma once
// TempDir: a fresh directory under /tmp, removed with its contents at scope exit (kept when the
// environment sets RELAY_TEST_KEEP_TMP=1, for debugging). Not thread-safe; one owner.

#include <string>

namespace relay::testing {

class TempDir {
 public:
  // Creates /tmp/<prefix>XXXXXX. Throws std::runtime_error if it cannot.
  explicit TempDir(const std::string& prefix = "relay-test.");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  // Writes `content` to path()/name and returns the file's full path. Throws on I/O failure.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// The whole content of `path`, or "" if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace relay::testing
