#pragma once
// protoc_decode: decodes protobuf bytes with `protoc --decode`, a decoder independent of relay's
// generated code, for tests. Header-only so that any test binary can use it.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

namespace relay::test {

struct ProtocOutput {
  int exit_status = -1;  // protoc's exit status; -1 when it could not be run
  std::string text;      // stdout and stderr: the message in protobuf text format on success
};

// Runs `<protoc> --decode <message> -I <proto_dir> relay/v1/event.proto` with `bytes` on stdin.
inline ProtocOutput protoc_decode(const std::string& protoc, const std::string& proto_dir,
                                  std::string_view message, const std::string& bytes) {
  ProtocOutput out;
  char path[] = "/tmp/relay-protoc-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return out;
  close(fd);
  std::ofstream(path, std::ios::binary) << bytes;
  const std::string command = "'" + protoc + "' --decode " + std::string(message) + " -I '" +
                              proto_dir + "' relay/v1/event.proto < '" + path + "' 2>&1";
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    for (std::size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;)
      out.text.append(buffer, n);
    const int status = pclose(pipe);
    out.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  unlink(path);
  return out;
}

}  // namespace relay::test
