#include "tests/support/tls_fixture.h"

#include <sys/wait.h>

#include <cstdlib>
#include <stdexcept>

namespace relay::testing {
namespace {

// Quotes `arg` for /bin/sh: inside single quotes only a single quote needs escaping.
std::string shell_quote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// The extensions each kind of certificate carries. Written to files because `openssl x509 -req`
// takes extensions only from a file, and a private config keeps the system openssl.cnf out of it.
constexpr const char* kCaConfig =
    "[req]\n"
    "distinguished_name = dn\n"
    "[dn]\n"
    "[ca]\n"
    "basicConstraints = critical, CA:TRUE\n"
    "keyUsage = critical, keyCertSign, cRLSign\n"
    "subjectKeyIdentifier = hash\n";
constexpr const char* kServerExtensions =
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
    "authorityKeyIdentifier = keyid\n";
constexpr const char* kWrongHostExtensions =
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:wrong-host.example\n"
    "authorityKeyIdentifier = keyid\n";
constexpr const char* kClientExtensions =
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical, digitalSignature\n"
    "extendedKeyUsage = clientAuth\n"
    "authorityKeyIdentifier = keyid\n";

}  // namespace

TlsFixture::TlsFixture() {
  dir_.write("ca.cnf", kCaConfig);
  make_ca("ca", "relay test CA");
  make_ca("other-ca", "relay unrelated test CA");
  make_leaf("server", "ca", "localhost", kServerExtensions, 2);
  make_leaf("wrong-host", "ca", "wrong-host.example", kWrongHostExtensions, 3);
  make_leaf("client", "ca", "relay test client", kClientExtensions, 4);
}

std::string TlsFixture::write(const std::string& name, const std::string& content) const {
  return dir_.write(name, content);
}

void TlsFixture::openssl(const std::vector<std::string>& args) const {
  const std::string log = file("openssl.log");
  std::string cmd = "openssl";
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " >" + shell_quote(log) + " 2>&1 </dev/null";
  const int rc = std::system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    throw std::runtime_error("TlsFixture: `" + cmd + "` failed (status " + std::to_string(rc) +
                             "): " + read_file(log));
  }
}

void TlsFixture::make_ca(const std::string& name, const std::string& common_name) const {
  openssl({"req",
           "-x509",
           "-new",
           "-newkey",
           "ec",
           "-pkeyopt",
           "ec_paramgen_curve:prime256v1",
           "-nodes",
           "-keyout",
           file(name + ".key"),
           "-out",
           file(name + ".crt"),
           "-days",
           "2",
           "-subj",
           "/CN=" + common_name,
           "-config",
           file("ca.cnf"),
           "-extensions",
           "ca"});
}

void TlsFixture::make_leaf(const std::string& name, const std::string& ca,
                           const std::string& common_name, const std::string& extensions,
                           int serial) const {
  const std::string ext = dir_.write(name + ".ext", extensions);
  openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", file(name + ".key"), "-out", file(name + ".csr"), "-subj",
           "/CN=" + common_name, "-config", file("ca.cnf")});
  openssl({"x509", "-req", "-in", file(name + ".csr"), "-CA", file(ca + ".crt"), "-CAkey",
           file(ca + ".key"), "-set_serial", std::to_string(serial), "-days", "2", "-extfile", ext,
           "-out", file(name + ".crt")});
}

}  // namespace relay::testing
