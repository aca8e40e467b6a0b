#include "tests/support/pg_cluster.h"

#include <cstdlib>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string>

#include "tests/support/temp_dir.h"
#include "tests/support/test_database.h"

#ifndef RELAY_SOURCE_DIR
#error "RELAY_SOURCE_DIR must be defined by the build"
#endif

namespace relay::testing {
namespace {

void run_pg(const std::string& command) {
  const char* dir = std::getenv("RELAY_TEST_PG_DIR");
  if (dir == nullptr || *dir == '\0') {
    throw std::runtime_error("RELAY_TEST_PG_DIR is not set: run integration tests through ctest");
  }
  TempDir tmp("relay-pg-cmd.");
  const std::string out = tmp.path() + "/output";
  const std::string cmd = std::string("'") + RELAY_SOURCE_DIR + "/scripts/pg' " + command + " '" +
                          dir + "' >'" + out + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    throw std::runtime_error("scripts/pg " + command + " failed:\n" + read_file(out));
  }
}

}  // namespace

void pg_restart() { run_pg("restart"); }

void pg_stop() { run_pg("stop"); }

void pg_start() {
  // `start` tries the recorded port first; a test's relay has the URL, so the port must not change.
  const std::string before = test_cluster_url();
  run_pg("start");
  const std::string after = test_cluster_url();
  if (after != before) {
    throw std::runtime_error("pg_start: the cluster came back on another port (" + before + " -> " +
                             after + "): the old port was taken meanwhile");
  }
}

PrivateCluster::PrivateCluster() { pg("start"); }

PrivateCluster::~PrivateCluster() {
  try {
    pg("stop");
  } catch (...) {
  }
}

std::string PrivateCluster::url() const {
  std::string u = read_file(dir_.path() + "/url");
  while (!u.empty() && (u.back() == '\n' || u.back() == '\r')) u.pop_back();
  return u;
}

void PrivateCluster::restart() { pg("restart"); }

void PrivateCluster::exec(std::initializer_list<std::string> statements) {
  pqxx::connection c(url());
  for (const auto& sql : statements) pqxx::nontransaction(c).exec(sql);
}

std::string PrivateCluster::value(const std::string& sql) {
  pqxx::connection c(url());
  const auto r = pqxx::nontransaction(c).exec(sql);
  return r.empty() || r[0][0].is_null() ? "" : r[0][0].as<std::string>();
}

void PrivateCluster::pg(const std::string& command) {
  const std::string out = dir_.path() + "/pg-output";
  const std::string cmd = std::string("'") + RELAY_SOURCE_DIR + "/scripts/pg' " + command + " '" +
                          dir_.path() + "' >'" + out + "' 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    throw std::runtime_error("scripts/pg " + command + " " + dir_.path() + " failed:\n" +
                             read_file(out));
  }
}

}  // namespace relay::testing
