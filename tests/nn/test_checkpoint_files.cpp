// The project's one atomic writer (src/nn/file_io.hpp) on what a path can name, and the checkpoint's
// per-file checks: checksums, non-finite values, metadata and files saved with it, stale temporaries.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <limits>

#include <exprgrad/text/vocab_io.hpp>

#include "../../src/nn/file_io.hpp"
#include "checkpoint_test_util.hpp"

using namespace exprgrad;
using namespace nn_test;
namespace fs = std::filesystem;
using exprgrad::detail::io_error;
using exprgrad::detail::write_file_atomically;

namespace {

// Expects write_file_atomically(path, ...) to throw io_error whose message contains every phrase.
void expect_refused(const fs::path& path, std::initializer_list<std::string> phrases) {
    bool thrown = false;
    try {
        write_file_atomically(path, "new contents\n");
    } catch (const io_error& e) {
        thrown = true;
        INFO("what(): ", e.what());
        for (const auto& p : phrases) CHECK(std::string(e.what()).find(p) != std::string::npos);
    }
    CHECK(thrown);
}

mode_t mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode;
}

}  // namespace

TEST_CASE("atomic writer: a new file, and a regular file replaced whole with its permissions kept") {
    temp_dir tmp;
    const fs::path f = tmp.path / "out.txt";
    write_file_atomically(f, "one\n");
    CHECK(read_text(f) == "one\n");
    CHECK((mode_of(f) & 0777) == 0644);
    fs::permissions(f, fs::perms(0600));
    write_file_atomically(f, "two\n");
    CHECK(read_text(f) == "two\n");
    CHECK((mode_of(f) & 0777) == 0600);
    CHECK(entries(tmp.path) == std::set<std::string>{"out.txt"});  // no temporary left
    // text::write_file_atomically is the same writer (vocabularies, tiny_lm's files).
    text::write_file_atomically(f.string(), "three\n");
    CHECK(read_text(f) == "three\n");
}

TEST_CASE("atomic writer: symbolic links are followed, the link stays and its target is updated") {
    temp_dir tmp;
    fs::create_directory(tmp.path / "real");
    const fs::path target = tmp.path / "real" / "data.txt";
    write_text(target, "old\n");
    SUBCASE("a link to a file (relative, into another directory)") {
        fs::create_symlink("real/data.txt", tmp.path / "link");
        write_file_atomically(tmp.path / "link", "new\n");
        CHECK(fs::is_symlink(tmp.path / "link"));
        CHECK(fs::read_symlink(tmp.path / "link") == "real/data.txt");
        CHECK(read_text(target) == "new\n");
        // The temporary was made next to the target, and nothing is left in either directory.
        CHECK(entries(tmp.path) == std::set<std::string>{"real", "link"});
        CHECK(entries(tmp.path / "real") == std::set<std::string>{"data.txt"});
    }
    SUBCASE("a chain of links") {
        fs::create_symlink(target, tmp.path / "c");
        fs::create_symlink("c", tmp.path / "b");
        fs::create_symlink("b", tmp.path / "a");
        write_file_atomically(tmp.path / "a", "chained\n");
        CHECK((fs::is_symlink(tmp.path / "a") && fs::is_symlink(tmp.path / "b") && fs::is_symlink(tmp.path / "c")));
        CHECK(read_text(target) == "chained\n");
    }
    SUBCASE("a dangling link creates its target") {
        fs::create_symlink("real/fresh.txt", tmp.path / "dangling");
        write_file_atomically(tmp.path / "dangling", "created\n");
        CHECK(fs::is_symlink(tmp.path / "dangling"));
        CHECK(read_text(tmp.path / "real" / "fresh.txt") == "created\n");
    }
    SUBCASE("a link loop is refused") {
        fs::create_symlink("loop2", tmp.path / "loop1");
        fs::create_symlink("loop1", tmp.path / "loop2");
        expect_refused(tmp.path / "loop1", {"loop1", "too many levels of symbolic links"});
        CHECK(fs::is_symlink(tmp.path / "loop1"));
    }
}

TEST_CASE("atomic writer: a directory, a FIFO and a link to a directory are refused and left as they are") {
    temp_dir tmp;
    fs::create_directory(tmp.path / "dir");
    write_text(tmp.path / "dir" / "keep", "x");
    expect_refused(tmp.path / "dir", {(tmp.path / "dir").string(), "is a directory"});
    CHECK(read_text(tmp.path / "dir" / "keep") == "x");
    fs::create_symlink("dir", tmp.path / "to_dir");
    expect_refused(tmp.path / "to_dir", {"to_dir", "is a directory"});
    CHECK(fs::is_symlink(tmp.path / "to_dir"));
    // A FIFO: opening it for writing would block until a reader comes, so it is refused (not opened).
    REQUIRE(::mkfifo((tmp.path / "fifo").c_str(), 0644) == 0);
    expect_refused(tmp.path / "fifo", {"fifo", "a FIFO", "refusing"});
    CHECK(S_ISFIFO(mode_of(tmp.path / "fifo")));
    CHECK(entries(tmp.path) == std::set<std::string>{"dir", "to_dir", "fifo"});
}

TEST_CASE("atomic writer: a character device is written in place, never replaced; its errors are reported") {
    REQUIRE(S_ISCHR(mode_of("/dev/null")));
    write_file_atomically("/dev/null", "discarded\n");
    CHECK(S_ISCHR(mode_of("/dev/null")));
    temp_dir tmp;
    fs::create_symlink("/dev/null", tmp.path / "null_link");
    write_file_atomically(tmp.path / "null_link", "discarded\n");
    CHECK(fs::is_symlink(tmp.path / "null_link"));
    if (fs::exists("/dev/full") && S_ISCHR(mode_of("/dev/full")) && ::access("/dev/full", W_OK) == 0) {
        // Every write to /dev/full fails with ENOSPC: the error names the file.
        expect_refused("/dev/full",
                       {"/dev/full", "write failed", std::error_code(ENOSPC, std::generic_category()).message()});
        CHECK(S_ISCHR(mode_of("/dev/full")));
    }
}

TEST_CASE("fnv1a64 gives the published FNV-1a 64 test vectors") {
    CHECK(nn::fnv1a64("") == 0xcbf29ce484222325ULL);
    CHECK(nn::fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
    CHECK(nn::fnv1a64("foobar") == 0x85944171f73967e8ULL);
}

TEST_CASE("meta values are %-escaped and read back byte for byte; malformed escapes are refused") {
    using nn::detail::escape_value;
    using nn::detail::unescape_value;
    CHECK(escape_value(" a%") == "%20a%25");
    CHECK(escape_value("") == "%");
    CHECK(escape_value("gradient_max") == "gradient_max");
    for (const std::string& v : {std::string(), std::string("/usr/share/my games/x"), std::string("a\nb\tc%"),
                                 std::string("\xc3\xa9\xff\x01", 4), std::string(1, '\0')})
        CHECK(unescape_value(escape_value(v)) == v);
    CHECK_FALSE(unescape_value("%4").has_value());
    CHECK_FALSE(unescape_value("%zz").has_value());
    CHECK_FALSE(unescape_value("ab%").has_value());
}

namespace {

struct small_checkpoint {
    temp_dir tmp;
    fs::path dir = tmp.path / "ck";
    nn::parameter_set<float> ps;
    nn::adam<float> opt;
    small_checkpoint() {
        ps.add("w", xt::xarray<float>::from_shape({3}));
        rng g(2);
        nn::init::normal(ps[0].value, g, 0, 1);
        nn::init::normal(ps[0].grad, g, 0, 1);
        opt.step(ps);
        nn::save_checkpoint(dir, ps,
                            {.opt = &opt,
                             .metadata = {{"width", "32"}, {"corpus_dir", "/my corpus/%"}, {"empty", ""}},
                             .files = {{"history.tsv", "step\tloss\n1\t2.5\n"}}});
    }
    void load() {
        nn::parameter_set<float> back;
        back.add("w", xt::zeros<float>({3}));
        nn::adam<float> o;
        nn::load_checkpoint(dir, back, {.opt = &o});
    }
};

void expect_load_error(small_checkpoint& c, const std::string& file, std::initializer_list<std::string> phrases) {
    bool thrown = false;
    try {
        c.load();
    } catch (const nn::checkpoint_error& e) {
        thrown = true;
        INFO("what(): ", e.what());
        CHECK(e.file() == fs::absolute(c.dir).lexically_normal() / file);
        for (const auto& p : phrases) CHECK(std::string(e.what()).find(p) != std::string::npos);
    }
    CHECK(thrown);
}

std::string with_value(std::string npy, std::size_t index, float v) {
    const std::size_t offset = npy.size() - 3 * sizeof(float) + index * sizeof(float);
    std::memcpy(npy.data() + offset, &v, sizeof v);
    return npy;
}

}  // namespace

TEST_CASE("metadata and files saved with a checkpoint read back with read_checkpoint_info") {
    small_checkpoint c;
    c.load();
    const nn::checkpoint_info info = nn::read_checkpoint_info(c.dir);
    REQUIRE(info.metadata.size() == 3);
    CHECK(*info.meta("width") == "32");
    CHECK(*info.meta("corpus_dir") == "/my corpus/%");
    CHECK(*info.meta("empty") == "");
    CHECK(info.meta("heads") == nullptr);
    REQUIRE(info.file("history.tsv") != nullptr);
    CHECK(*info.file("history.tsv") == "step\tloss\n1\t2.5\n");
    CHECK(info.optimizer_step == std::optional<std::uint64_t>(1));
    CHECK_FALSE(info.schedule_step.has_value());
    // A bad key or a repeated file name is refused before anything is written.
    CHECK_THROWS_AS(nn::save_checkpoint(c.tmp.path / "x", c.ps, {.metadata = {{"a b", "1"}}}), nn::checkpoint_error);
    CHECK_THROWS_AS(nn::save_checkpoint(c.tmp.path / "x", c.ps, {.files = {{"f", "1"}, {"f", "2"}}}),
                    nn::checkpoint_error);
    CHECK_FALSE(fs::exists(c.tmp.path / "x"));
}

TEST_CASE("a file that does not match its checksum, or has none, is refused naming it") {
    small_checkpoint c;
    SUBCASE("a saved file edited") {
        write_text(c.dir / "files" / "history.tsv", "step\tloss\n");
        CHECK_THROWS_WITH_AS(nn::read_checkpoint_info(c.dir), doctest::Contains("files/history.tsv: checksum"),
                             nn::checkpoint_error);
    }
    SUBCASE("a parameter value changed, the .npy still well formed") {
        const fs::path f = c.dir / "params" / "w.npy";
        write_text(f, with_value(read_text(f), 1, 0.25f));
        expect_load_error(c, "params/w.npy", {"checksum", "does not match", "changed or damaged"});
    }
    SUBCASE("an optimizer buffer changed") {
        const fs::path f = c.dir / "optimizer" / "exp_avg" / "w.npy";
        write_text(f, with_value(read_text(f), 0, 1e-3f));
        expect_load_error(c, "optimizer/exp_avg/w.npy", {"checksum"});
    }
    SUBCASE("the checksum line removed") {
        std::string man = read_text(c.dir / "manifest.txt");
        const auto at = man.find("checksum params/w.npy ");
        REQUIRE(at != std::string::npos);
        write_text(c.dir / "manifest.txt", man.erase(at, man.find('\n', at) + 1 - at));
        restamp_manifest(c.dir);
        expect_load_error(c, "manifest.txt", {"no checksum line for params/w.npy"});
    }
    SUBCASE("a malformed checksum line") {
        std::string man = read_text(c.dir / "manifest.txt");
        const auto at = man.find("checksum params/w.npy ");
        write_text(c.dir / "manifest.txt", man.replace(at, 22, "checksum params//w.npy "));
        expect_load_error(c, "manifest.txt", {"invalid path"});
    }
}

TEST_CASE("NaN or infinity inside an .npy file is refused naming the file, even with a matching checksum") {
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()}) {
        small_checkpoint c;
        for (const std::string rel : {"params/w.npy", "optimizer/exp_avg_sq/w.npy"}) {
            const std::string good = read_text(c.dir / rel);
            write_text(c.dir / rel, with_value(good, 2, bad));
            restamp_checksum(c.dir, rel);  // the structure check, not the checksum, must catch it
            expect_load_error(c, rel, {"at flat index 2 is not finite"});
            write_text(c.dir / rel, good);
            restamp_checksum(c.dir, rel);
        }
        c.load();
    }
    // And a non-finite state is never written.
    nn::parameter_set<float> ps;
    ps.add("w", xt::xarray<float>{1.0f, std::numeric_limits<float>::quiet_NaN()});
    temp_dir tmp;
    CHECK_THROWS_WITH_AS(nn::save_checkpoint(tmp.path / "ck", ps), doctest::Contains("parameter \"w\" holds nan"),
                         nn::checkpoint_error);
    CHECK(entries(tmp.path).empty());
}

TEST_CASE("remove_stale_checkpoint_temporaries removes our staging directories and nothing else") {
    temp_dir tmp;
    const fs::path ck = tmp.path / "ckpt";
    nn::parameter_set<float> ps;
    ps.add("w", xt::zeros<float>({2}));
    nn::save_checkpoint(ck, ps);
    for (const char* d : {"ckpt.tmp-aB3xYz", "ckpt.old-000000"}) {
        fs::create_directory(tmp.path / d);
        write_text(tmp.path / d / "manifest.txt", "partial");
    }
    // Not ours: other lengths, other characters, another checkpoint's name, a regular file, a link.
    for (const char* d : {"ckpt.tmp-abc", "ckpt.tmp-abc1234", "ckpt.tmp-ab.123", "other.tmp-abc123", "ckpt.new-abc123"})
        fs::create_directory(tmp.path / d);
    write_text(tmp.path / "ckpt.tmp-qwerty", "a file");
    fs::create_directory(tmp.path / "elsewhere");
    fs::create_directory_symlink("elsewhere", tmp.path / "ckpt.old-link00");
    const auto removed = nn::remove_stale_checkpoint_temporaries(ck);
    CHECK(removed.size() == 2);
    CHECK(entries(tmp.path) == std::set<std::string>{"ckpt", "ckpt.tmp-abc", "ckpt.tmp-abc1234", "ckpt.tmp-ab.123",
                                                     "other.tmp-abc123", "ckpt.new-abc123", "ckpt.tmp-qwerty",
                                                     "elsewhere", "ckpt.old-link00"});
    nn::parameter_set<float> back;
    back.add("w", xt::ones<float>({2}));
    nn::load_checkpoint(ck, back);  // the checkpoint itself is untouched
    CHECK(back[0].value(0) == 0.0f);
    CHECK(nn::remove_stale_checkpoint_temporaries(tmp.path / "absent" / "ckpt").empty());
}

TEST_CASE("a checkpoint directory given by a symbolic link: the link stays, its target is replaced") {
    temp_dir tmp;
    fs::create_directory(tmp.path / "runs");
    fs::create_directory_symlink("runs/7", tmp.path / "ckpt");  // dangling: the first save creates runs/7
    nn::parameter_set<float> ps;
    ps.add("w", xt::xarray<float>{1.0f, 2.0f});
    nn::save_checkpoint(tmp.path / "ckpt", ps);
    ps[0].value(0) = 5.0f;
    nn::save_checkpoint(tmp.path / "ckpt", ps);  // replaces runs/7 through the link
    CHECK(fs::is_symlink(tmp.path / "ckpt"));
    CHECK(entries(tmp.path) == std::set<std::string>{"runs", "ckpt"});
    CHECK(entries(tmp.path / "runs") == std::set<std::string>{"7"});  // staged next to the target, nothing left
    nn::parameter_set<float> back;
    back.add("w", xt::zeros<float>({2}));
    nn::load_checkpoint(tmp.path / "ckpt", back);
    CHECK(back[0].value(0) == 5.0f);
    CHECK(fs::exists(tmp.path / "runs" / "7" / "manifest.txt"));
    // A link loop is refused naming it.
    fs::create_directory_symlink("loop", tmp.path / "loop");
    CHECK_THROWS_WITH_AS(nn::save_checkpoint(tmp.path / "loop", ps), doctest::Contains("too many levels"),
                         nn::checkpoint_error);
}
