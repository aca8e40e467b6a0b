// database_url: passwords are found and hidden in well-formed and malformed database URLs and in
// libpq key=value conninfo, and the shapes libpq would echo are refused in relay's own words.

#include "relay/common/database_url.h"

#include <catch2/catch.hpp>

using relay::database_url_problem;
using relay::redact_database_secrets;
using relay::redact_database_url;

namespace {

bool hides(const std::string& url, std::initializer_list<const char*> secrets) {
  // libpq-like messages that quote the URL, or pieces of it.
  const std::string text = "cannot connect: \"" + url + "\" / " + url;
  const std::string redacted = redact_database_secrets(text, url);
  const std::string shown = redact_database_url(url);
  for (const char* s : secrets) {
    if (redacted.find(s) != std::string::npos || shown.find(s) != std::string::npos) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("a well-formed URL shows user, host and database but not the password", "[common]") {
  CHECK(redact_database_url("postgresql://app:s3cret@db.example:5432/orders") ==
        "postgresql://app@db.example:5432/orders");
  CHECK(redact_database_url("postgres://app@db/orders") == "postgres://app@db/orders");
  CHECK(redact_database_url("postgresql://db/orders?password=s3cret&sslmode=require") ==
        "postgresql://db/orders?password=***&sslmode=require");
  CHECK_FALSE(database_url_problem("postgresql://app:s3cret@db.example:5432/orders"));
  CHECK_FALSE(database_url_problem("postgresql://app:p%40ss@db/orders"));
}

TEST_CASE("malformed URLs hide every piece of the password", "[common]") {
  CHECK(hides("postgresql://relay:pwLeft%zzpwRight@127.0.0.1/app", {"pwLeft", "pwRight"}));
  CHECK(hides("postgresq1://relay:pwTypo@127.0.0.1/app", {"pwTypo"}));
  CHECK(hides("POSTGRESQL://relay:pwUpper@127.0.0.1/app", {"pwUpper"}));
  CHECK(hides("postgresql://relay:pwA@pwB@127.0.0.1/app", {"pwA", "pwB"}));
  CHECK(hides("postgresql://relay:pwC/pwD@127.0.0.1/app", {"pwC", "pwD"}));
  CHECK(hides("postgresql://relay:pw%41Enc@127.0.0.1/app", {"pw%41Enc", "pwAEnc"}));
  CHECK(redact_database_url("postgresql://relay:pwA@pwB@127.0.0.1/app") ==
        "postgresql://relay@127.0.0.1/app");
}

TEST_CASE("key=value conninfo hides plain, quoted and escaped passwords", "[common]") {
  CHECK(hides("host=h user=u password=pwPlain dbname=d", {"pwPlain"}));
  CHECK(hides("host=h password = 'pwQ1 pwQ2' dbname=d", {"pwQ1 pwQ2", "pwQ1", "pwQ2"}));
  CHECK(hides("host=h password='pw\\'Esc' dbname=d", {"pw'Esc", "Esc"}));
  CHECK(hides("host=h password='pwUnterminated", {"pwUnterminated"}));
  CHECK(hides("dbname=postgresql://u:pwNested@h/d", {"pwNested"}));
  CHECK(redact_database_url("host=h password=pwPlain dbname=d") == "host=h password=*** dbname=d");
  CHECK_FALSE(database_url_problem("host=h password='se cret' dbname=d"));
}

TEST_CASE("shapes libpq would echo are refused without quoting the URL", "[common]") {
  const std::vector<std::string> bad = {
      "postgresql://relay:pwLeft%zzpwRight@127.0.0.1/app",
      "postgresql://relay:pw%0@127.0.0.1/app",
      "postgresql://relay:pw%00x@127.0.0.1/app",
      "postgresq1://relay:pwTypo@127.0.0.1/app",
      "POSTGRESQL://relay:pwUpper@127.0.0.1/app",
      "postgresql://relay:pwA@pwB@127.0.0.1/app",
      "host=h password=pw cret",
      "host=h password='pwUnterminated",
  };
  for (const auto& url : bad) {
    INFO(url);
    const auto problem = database_url_problem(url);
    REQUIRE(problem.has_value());
    CHECK(problem->find("pw") == std::string::npos);
  }
}
