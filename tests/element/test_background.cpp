// Background images (gst-plugin/imageload.h, backgroundloader.h) called directly: the limits
// enforced before decoding (bytes, pixels, formats, what is at the path) and the loader that
// decodes off the streaming thread.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <thread>
#include <vector>

#include "backgroundloader.h"
#include "element_util.hpp"
#include "imageload.h"

using namespace unetseg_test;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Load {
  bool ok;
  cv::Mat rgb;
  std::string error;
  double seconds;
};

Load load(const std::string& path, int timeout_s = 10) {
  ensure_gst();
  Load r;
  const auto t0 = Clock::now();
  r.ok = unetseg_load_image_rgb(path, r.rgb, r.error, timeout_s);
  r.seconds = seconds_since(t0);
  return r;
}

void put32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s += static_cast<char>((v >> shift) & 0xff);
}

uint32_t crc32(const std::string& bytes) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

std::string png_chunk(const std::string& type, const std::string& data) {
  std::string out;
  put32(out, static_cast<uint32_t>(data.size()));
  out += type + data;
  put32(out, crc32(type + data));
  return out;
}

// A PNG signature and an IHDR (with a correct CRC) claiming w x h, 8-bit RGB; no image data.
std::string png_claiming(uint32_t w, uint32_t h) {
  std::string ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IEND", "");
}

std::string jpeg_segment(unsigned char marker, const std::string& payload) {
  const size_t n = payload.size() + 2;
  return std::string{'\xff', static_cast<char>(marker), static_cast<char>(n >> 8), static_cast<char>(n & 0xff)} +
         payload;
}

std::string jpeg_sof(unsigned char marker, int w, int h) {
  std::string p{'\x08', static_cast<char>(h >> 8), static_cast<char>(h & 0xff), static_cast<char>(w >> 8),
                static_cast<char>(w & 0xff), '\x03'};
  p += std::string("\x01\x22\x00\x02\x11\x01\x03\x11\x01", 9);
  return jpeg_segment(marker, p);
}

// SOI, a JFIF APP0, an APP1 holding a small "thumbnail" frame header (to be skipped), a DQT, then
// the frame header SOFn claiming w x h; no scan data.
std::string jpeg_claiming(int w, int h, unsigned char sof = 0xc0) {
  std::string out("\xff\xd8", 2);
  out += jpeg_segment(0xe0, std::string("JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00", 14));
  out += jpeg_segment(0xe1, "Exif" + std::string(2, '\0') + jpeg_sof(0xc0, 16, 16));
  out += jpeg_segment(0xdb, std::string(1, '\0') + std::string(64, '\x01'));
  out += jpeg_sof(sof, w, h);
  out += std::string("\xff\xd9", 2);
  return out;
}

// A BGR image of one colour (OpenCV order), written with OpenCV.
void write_solid(const std::string& path, int w, int h, cv::Scalar bgr, int type = CV_8UC3,
                 std::vector<int> params = {}) {
  ASSERT_TRUE(cv::imwrite(path, cv::Mat(h, w, type, bgr), params)) << path;
}

// A smooth BGR gradient: slow enough to decode that a load is seen in flight.
void write_gradient(const std::string& path, int w, int h) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) m.at<cv::Vec3b>(y, x) = cv::Vec3b(x & 0xff, y & 0xff, (x + y) & 0xff);
  ASSERT_TRUE(cv::imwrite(path, m, {cv::IMWRITE_PNG_COMPRESSION, 1})) << path;
}

void expect_rgb(const cv::Mat& rgb, int w, int h, cv::Vec3b want, int tolerance = 0) {
  ASSERT_EQ(rgb.type(), CV_8UC3);
  ASSERT_EQ(rgb.cols, w);
  ASSERT_EQ(rgb.rows, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const cv::Vec3b p = rgb.at<cv::Vec3b>(y, x);
      for (int c = 0; c < 3; ++c)
        ASSERT_LE(std::abs(p[c] - want[c]), tolerance)
            << x << "," << y << " channel " << c << ": " << int(p[c]) << " want " << int(want[c]);
    }
}

}  // namespace

// ---- the size an image claims, refused before decoding ----

TEST(BackgroundImage, PngClaimingTwentyThousandSquaredIsRefusedByItsHeader) {
  TempDir dir;
  const std::string path = dir.file("huge.png");
  write_file(path, png_claiming(20000, 20000));
  const Load r = load(path);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.rgb.empty());
  EXPECT_NE(r.error.find(path), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("claims 20000x20000 pixels"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("8192x8192 limit"), std::string::npos) << r.error;
  EXPECT_LT(r.seconds, 0.5);
  std::printf("20000x20000 PNG claim refused in %.2f ms: %s\n", r.seconds * 1e3, r.error.c_str());
  const auto t0 = Clock::now();
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(load(path).ok);
  std::printf("and in %.3f ms each over 100 more\n", seconds_since(t0) * 10);

  // One side over is enough; the limit itself is no claim to refuse.
  write_file(path, png_claiming(8193, 1));
  EXPECT_NE(load(path).error.find("claims 8193x1 pixels"), std::string::npos);
  write_file(path, png_claiming(1, 8193));
  EXPECT_NE(load(path).error.find("claims 1x8193 pixels"), std::string::npos);
}

TEST(BackgroundImage, JpegFrameHeaderClaimingTwentyThousandSquaredIsRefused) {
  TempDir dir;
  const std::string path = dir.file("huge.jpg");
  for (unsigned char sof : {0xc0, 0xc1, 0xc2, 0xc9}) {  // baseline, extended, progressive, arithmetic
    write_file(path, jpeg_claiming(20000, 20000, sof));
    const Load r = load(path);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find(path + " claims 20000x20000 pixels"), std::string::npos) << std::hex << int(sof) << r.error;
    EXPECT_LT(r.seconds, 0.5);
    if (sof == 0xc0) std::printf("20000x20000 JPEG claim refused in %.2f ms\n", r.seconds * 1e3);
  }
  write_file(path, jpeg_claiming(9000, 100));
  EXPECT_NE(load(path).error.find("claims 9000x100 pixels"), std::string::npos);

  // A small JPEG followed by a second image claiming 20000x20000: only the first is decoded
  // (the decoder's output is capped too).
  write_solid(dir.file("small.jpg"), 16, 8, {0, 0, 255});
  const auto small = read_file(dir.file("small.jpg"));
  write_file(path, std::string(small.begin(), small.end()) + jpeg_claiming(20000, 20000));
  const Load two = load(path);
  ASSERT_TRUE(two.ok) << two.error;
  expect_rgb(two.rgb, 16, 8, {255, 0, 0}, 4);
}

TEST(BackgroundImage, HeaderWithoutASizeOrAnEmptySizeIsRefused) {
  TempDir dir;
  write_file(dir.file("zero.png"), png_claiming(0, 10));
  EXPECT_NE(load(dir.file("zero.png")).error.find("empty size (0x10)"), std::string::npos);
  // A JPEG that ends before any frame header.
  write_file(dir.file("nosof.jpg"), std::string("\xff\xd8\xff\xe0\x00\x10JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9", 22));
  const Load r = load(dir.file("nosof.jpg"));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("could not be decoded"), std::string::npos) << r.error;
}

// ---- only JPEG and PNG, decided by the bytes ----

TEST(BackgroundImage, PlaylistsAndUriListsNamedJpgAreRefusedWithoutReachingAnything) {
  TempDir dir;
  // What the playlists point at: a TCP port of ours on loopback and a local file watched for opens.
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 8), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string http = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  const std::string target = dir.file("segment.ts");
  write_file(target, std::string(188, 'G'));
  const int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(watch, 0);
  ASSERT_GE(inotify_add_watch(watch, target.c_str(), IN_OPEN | IN_ACCESS), 0);

  struct Case {
    const char* name;
    std::string text;
    const char* found;
  };
  const std::vector<Case> cases = {
      {"hls.jpg",
       "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n" + http +
           "/seg0.ts\n#EXTINF:10.0,\nfile://" + target + "\n#EXT-X-ENDLIST\n",
       "(found application/x-hls)"},
      {"uris.jpg", http + "/a.png\nfile://" + target + "\n", "(found text/uri-list)"},
      {"radio.png", "#EXTM3U\n#EXTINF:-1,radio\n" + http + "/stream\n", "(found text/uri-list)"},
      {"pls.jpg",
       "[playlist]\nNumberOfEntries=2\nFile1=" + http + "/stream.mp3\nFile2=file://" + target +
           "\nTitle1=x\nLength1=-1\nVersion=2\n",
       "(found "},
  };
  for (const Case& c : cases) {
    write_file(dir.file(c.name), c.text);
    const Load r = load(dir.file(c.name));
    EXPECT_FALSE(r.ok) << c.name;
    EXPECT_NE(r.error.find(dir.file(c.name) + " could not be decoded: it is not a JPEG or PNG image "),
              std::string::npos)
        << r.error;
    EXPECT_NE(r.error.find(c.found), std::string::npos) << r.error;
    EXPECT_LT(r.seconds, 1.0) << c.name;
    std::printf("%s: %s\n", c.name, r.error.c_str());
  }
  // Nothing connected to our port, nothing opened the file the playlists name.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(accept(listener, nullptr, nullptr), 0) << "something connected to " << http;
  char events[4096];
  EXPECT_LT(read(watch, events, sizeof events), 0) << "something opened " << target;
  close(watch);
  close(listener);
}

TEST(BackgroundImage, OtherFormatsAreRefusedAndTheExtensionDoesNotMatter) {
  TempDir dir;
  write_solid(dir.file("really.bmp"), 4, 4, {1, 2, 3});
  ASSERT_EQ(std::rename(dir.file("really.bmp").c_str(), dir.file("bmp.png").c_str()), 0);
  const Load bmp = load(dir.file("bmp.png"));
  EXPECT_FALSE(bmp.ok);
  EXPECT_NE(bmp.error.find("is not a JPEG or PNG image (found image/bmp)"), std::string::npos) << bmp.error;

  write_file(dir.file("junk.png"), "definitely not a PNG");
  const Load junk = load(dir.file("junk.png"));
  EXPECT_FALSE(junk.ok);
  EXPECT_NE(junk.error.find("could not be decoded"), std::string::npos) << junk.error;
  EXPECT_NE(junk.error.find("is not a JPEG or PNG image"), std::string::npos) << junk.error;

  // A PNG named .jpg and a JPEG named .png: the bytes decide.
  write_solid(dir.file("a.png"), 6, 4, {30, 20, 10});
  ASSERT_EQ(std::rename(dir.file("a.png").c_str(), dir.file("a.jpg").c_str()), 0);
  const Load png = load(dir.file("a.jpg"));
  ASSERT_TRUE(png.ok) << png.error;
  expect_rgb(png.rgb, 6, 4, {10, 20, 30});
  write_solid(dir.file("b.jpg"), 16, 8, {30, 120, 200}, CV_8UC3, {cv::IMWRITE_JPEG_QUALITY, 100});
  ASSERT_EQ(std::rename(dir.file("b.jpg").c_str(), dir.file("b.png").c_str()), 0);
  const Load jpg = load(dir.file("b.png"));
  ASSERT_TRUE(jpg.ok) << jpg.error;
  expect_rgb(jpg.rgb, 16, 8, {200, 120, 30}, 3);
}

// ---- what is at the path ----

TEST(BackgroundImage, MissingDirectoryEmptyAndOversizedFilesAreRefused) {
  TempDir dir;
  const Load missing = load(dir.file("none.png"));
  EXPECT_FALSE(missing.ok);
  EXPECT_NE(missing.error.find(dir.file("none.png") + " does not exist"), std::string::npos) << missing.error;

  const Load directory = load(dir.path());
  EXPECT_NE(directory.error.find("is not a regular file (it is a directory)"), std::string::npos) << directory.error;

  write_file(dir.file("empty.png"), "");
  EXPECT_NE(load(dir.file("empty.png")).error.find("is empty (0 bytes)"), std::string::npos);

  // A sparse file one byte over the cap, starting like a PNG: refused by its size, unread.
  const std::string big = dir.file("big.png");
  write_file(big, png_claiming(100, 100));
  ASSERT_EQ(truncate(big.c_str(), static_cast<off_t>(UNETSEG_IMAGE_MAX_BYTES + 1)), 0);
  const Load r = load(big);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find(big + " is 67108865 bytes, more than the 64 MiB (67108864 bytes) limit"),
            std::string::npos)
      << r.error;
  EXPECT_LT(r.seconds, 0.5);
  std::printf("64 MiB + 1 byte sparse file refused in %.2f ms\n", r.seconds * 1e3);
}

TEST(BackgroundImage, FifoAtThePathIsRefusedAtOnce) {
  TempDir dir;
  const std::string path = dir.file("fifo.png");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  const Load r = load(path);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find(path + " does not exist or is not a regular file (it is a FIFO"), std::string::npos)
      << r.error;
  EXPECT_LT(r.seconds, 1.0);
}

// The path flips between a PNG and a FIFO while loads run: a check of the path followed by an
// open of the path would block forever in open() on the FIFO. Each load must end at once.
TEST(BackgroundImage, PathSwappedBetweenImageAndFifoNeverBlocks) {
  ensure_gst();
  auto dir = std::make_shared<TempDir>();
  const std::string path = dir->file("swapped.png");
  write_solid(dir->file("real.png"), 4, 4, {0, 0, 255});
  struct State {
    std::atomic<bool> stop{false};
    std::atomic<int> loads{0}, decoded{0}, refused{0};
    std::atomic<bool> done{false};
  };
  auto state = std::make_shared<State>();
  std::thread swapper([dir, path, state] {
    for (int i = 0; !state->stop; ++i) {
      const std::string tmp = dir->file("next" + std::to_string(i));
      if (i % 2 == 0) {
        if (link(dir->file("real.png").c_str(), tmp.c_str()) != 0) continue;
      } else if (mkfifo(tmp.c_str(), 0600) != 0) {
        continue;
      }
      rename(tmp.c_str(), path.c_str());
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });
  // Loads in a thread of their own so that a hang shows as a failure, not a stuck test (a thread
  // stuck in open() is left behind; it dies with the process).
  std::thread loader([path, state] {
    const auto t0 = Clock::now();
    while (seconds_since(t0) < 1.5) {
      cv::Mat rgb;
      std::string error;
      if (unetseg_load_image_rgb(path, rgb, error, 5)) {
        ++state->decoded;
      } else {
        ++state->refused;
      }
      ++state->loads;
    }
    state->done = true;
  });
  const auto t0 = Clock::now();
  while (!state->done && seconds_since(t0) < 8) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  state->stop = true;
  swapper.join();
  if (state->done) {
    loader.join();
  } else {
    loader.detach();
  }
  EXPECT_TRUE(state->done) << "a load hung on the swapped path after " << state->loads << " loads";
  EXPECT_GT(state->loads, 10);
  std::printf("swapped path: %d loads, %d decoded, %d refused\n", state->loads.load(), state->decoded.load(),
              state->refused.load());
}

// ---- real images decode to packed RGB ----

TEST(BackgroundImage, PngAndJpegDecodeToTheirColours) {
  TempDir dir;
  // OpenCV writes BGR: (30, 20, 10) is RGB (10, 20, 30).
  write_solid(dir.file("rgb.png"), 7, 5, {30, 20, 10});
  Load r = load(dir.file("rgb.png"));
  ASSERT_TRUE(r.ok) << r.error;
  expect_rgb(r.rgb, 7, 5, {10, 20, 30});
  std::printf("7x5 PNG decoded in %.2f ms\n", r.seconds * 1e3);

  write_solid(dir.file("gray.png"), 3, 2, {77}, CV_8UC1);
  r = load(dir.file("gray.png"));
  ASSERT_TRUE(r.ok) << r.error;
  expect_rgb(r.rgb, 3, 2, {77, 77, 77});

  write_solid(dir.file("rgba.png"), 4, 4, {200, 100, 50, 255}, CV_8UC4);
  r = load(dir.file("rgba.png"));
  ASSERT_TRUE(r.ok) << r.error;
  expect_rgb(r.rgb, 4, 4, {50, 100, 200});

  // 16-bit grey decodes (to its high byte); 16-bit colour is refused: pngdec (gst-plugins-good
  // 1.22) shifts it by one sample, which gives wrong colours.
  write_solid(dir.file("deep-grey.png"), 4, 3, {0x9abc}, CV_16UC1);
  r = load(dir.file("deep-grey.png"));
  ASSERT_TRUE(r.ok) << r.error;
  expect_rgb(r.rgb, 4, 3, {0x9a, 0x9a, 0x9a}, 1);
  for (int type : {CV_16UC3, CV_16UC4}) {
    write_solid(dir.file("deep.png"), 4, 3, {0x1234, 0x5678, 0x9abc, 0xffff}, type);
    r = load(dir.file("deep.png"));
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find(dir.file("deep.png") + " could not be decoded: 16-bit colour PNGs are not supported"),
              std::string::npos)
        << r.error;
  }

  write_solid(dir.file("photo.jpg"), 33, 17, {40, 160, 220}, CV_8UC3, {cv::IMWRITE_JPEG_QUALITY, 95});
  r = load(dir.file("photo.jpg"));
  ASSERT_TRUE(r.ok) << r.error;
  expect_rgb(r.rgb, 33, 17, {220, 160, 40}, 4);
  std::printf("33x17 JPEG decoded in %.2f ms\n", r.seconds * 1e3);

  write_solid(dir.file("progressive.jpg"), 16, 16, {0, 255, 0}, CV_8UC3, {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
  r = load(dir.file("progressive.jpg"));
  ASSERT_TRUE(r.ok) << r.error;
  expect_rgb(r.rgb, 16, 16, {0, 255, 0}, 4);

  // The limit itself decodes.
  write_solid(dir.file("wide.png"), UNETSEG_IMAGE_MAX_SIDE, 2, {1, 2, 3});
  r = load(dir.file("wide.png"));
  ASSERT_TRUE(r.ok) << r.error;
  expect_rgb(r.rgb, UNETSEG_IMAGE_MAX_SIDE, 2, {3, 2, 1});
  write_solid(dir.file("wider.png"), UNETSEG_IMAGE_MAX_SIDE + 1, 2, {1, 2, 3});
  EXPECT_NE(load(dir.file("wider.png")).error.find("claims 8193x2 pixels"), std::string::npos);
}

TEST(BackgroundImage, TruncatedImagesFailClearlyAndQuickly) {
  TempDir dir;
  write_gradient(dir.file("full.png"), 300, 200);
  const auto png = read_file(dir.file("full.png"));
  write_file(dir.file("cut.png"), std::string(png.begin(), png.begin() + png.size() / 2));
  Load r = load(dir.file("cut.png"));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find(dir.file("cut.png") + " could not be decoded"), std::string::npos) << r.error;
  EXPECT_LT(r.seconds, 2.0);
  std::printf("truncated PNG: %s (%.2f ms)\n", r.error.c_str(), r.seconds * 1e3);

  // A PNG header and nothing else.
  write_file(dir.file("header-only.png"), png_claiming(64, 64));
  r = load(dir.file("header-only.png"));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("could not be decoded"), std::string::npos) << r.error;
  EXPECT_LT(r.seconds, 2.0);
  std::printf("header-only PNG: %s\n", r.error.c_str());
}

TEST(BackgroundImage, CancelEndsALoadSoon) {
  ensure_gst();
  TempDir dir;
  write_gradient(dir.file("big.png"), 64, 64);
  std::atomic<bool> cancel{true};
  cv::Mat rgb;
  std::string error;
  const auto t0 = Clock::now();
  EXPECT_FALSE(unetseg_load_image_rgb(dir.file("big.png"), rgb, error, 10, &cancel));
  EXPECT_NE(error.find("cancelled"), std::string::npos) << error;
  EXPECT_LT(seconds_since(t0), 1.0);
}

// ---- BackgroundLoader ----

namespace {
// Polls take() until it returns true or `timeout_s` passes.
bool wait_take(BackgroundLoader& loader, cv::Mat& rgb, std::string& error, std::string& location,
               double timeout_s = 10) {
  const auto t0 = Clock::now();
  while (seconds_since(t0) < timeout_s) {
    if (loader.take(rgb, error, location)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}
}  // namespace

TEST(BackgroundLoader, RequestReturnsAtOnceAndTakeDeliversTheImageLaterOnce) {
  ensure_gst();
  TempDir dir;
  write_gradient(dir.file("big.png"), 3000, 2000);
  BackgroundLoader loader;
  cv::Mat rgb;
  std::string error, location;
  const auto t0 = Clock::now();
  loader.request(dir.file("big.png"));
  const double request_s = seconds_since(t0);
  EXPECT_FALSE(loader.take(rgb, error, location));  // still decoding: take() does not wait
  const double take_s = seconds_since(t0) - request_s;
  EXPECT_LT(request_s, 0.05);
  EXPECT_LT(take_s, 0.05);
  ASSERT_TRUE(wait_take(loader, rgb, error, location));
  const double ready_s = seconds_since(t0);
  EXPECT_EQ(error, "");
  EXPECT_EQ(location, dir.file("big.png"));
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb.size(), cv::Size(3000, 2000));
  EXPECT_EQ(rgb.at<cv::Vec3b>(1, 2), cv::Vec3b(3, 1, 2));  // BGR (2, 1, 3) as RGB
  std::printf("request %.3f ms, take %.3f ms, 3000x2000 PNG ready after %.0f ms\n", request_s * 1e3, take_s * 1e3,
              ready_s * 1e3);
  // Once only.
  EXPECT_FALSE(loader.take(rgb, error, location));
}

TEST(BackgroundLoader, NewerRequestSupersedesAnOlderOne) {
  ensure_gst();
  TempDir dir;
  write_gradient(dir.file("big.png"), 3000, 2000);
  write_solid(dir.file("small.png"), 5, 3, {0, 0, 200});
  BackgroundLoader loader;
  cv::Mat rgb;
  std::string error, location;

  // While the big one decodes.
  loader.request(dir.file("big.png"));
  loader.request(dir.file("small.png"));
  ASSERT_TRUE(wait_take(loader, rgb, error, location));
  EXPECT_EQ(location, dir.file("small.png"));
  EXPECT_EQ(error, "");
  expect_rgb(rgb, 5, 3, {200, 0, 0});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(loader.take(rgb, error, location)) << "the older request delivered " << location;

  // A finished result not taken yet is dropped by a newer request.
  loader.request(dir.file("small.png"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  loader.request(dir.file("none.png"));
  ASSERT_TRUE(wait_take(loader, rgb, error, location));
  EXPECT_EQ(location, dir.file("none.png"));
  EXPECT_TRUE(rgb.empty());
  EXPECT_FALSE(loader.take(rgb, error, location));

  // A burst: only the last counts.
  for (int i = 0; i < 200; ++i) loader.request(dir.file(i % 2 ? "big.png" : "none.png"));
  loader.request(dir.file("small.png"));
  ASSERT_TRUE(wait_take(loader, rgb, error, location));
  EXPECT_EQ(location, dir.file("small.png"));
  EXPECT_EQ(rgb.size(), cv::Size(5, 3));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(loader.take(rgb, error, location));
}

TEST(BackgroundLoader, ErrorsComeThroughTake) {
  ensure_gst();
  TempDir dir;
  write_file(dir.file("huge.png"), png_claiming(20000, 20000));
  write_file(dir.file("list.jpg"), "http://127.0.0.1:9/a.png\n");
  BackgroundLoader loader;
  cv::Mat rgb(2, 2, CV_8UC3);
  std::string error, location;
  loader.request(dir.file("missing.png"));
  ASSERT_TRUE(wait_take(loader, rgb, error, location));
  EXPECT_TRUE(rgb.empty());
  EXPECT_EQ(location, dir.file("missing.png"));
  EXPECT_NE(error.find(dir.file("missing.png") + " does not exist"), std::string::npos) << error;
  loader.request(dir.file("huge.png"));
  ASSERT_TRUE(wait_take(loader, rgb, error, location));
  EXPECT_NE(error.find("claims 20000x20000 pixels"), std::string::npos) << error;
  loader.request(dir.file("list.jpg"));
  ASSERT_TRUE(wait_take(loader, rgb, error, location));
  EXPECT_NE(error.find("is not a JPEG or PNG image (found text/uri-list)"), std::string::npos) << error;

  // An empty location is "no image", delivered at once.
  loader.request("");
  ASSERT_TRUE(loader.take(rgb, error, location));
  EXPECT_TRUE(rgb.empty());
  EXPECT_EQ(error, "");
  EXPECT_EQ(location, "");
}

TEST(BackgroundLoader, LoadNowIsSynchronousAndLeavesRequestsAlone) {
  ensure_gst();
  TempDir dir;
  write_solid(dir.file("a.png"), 3, 3, {10, 20, 30});
  write_file(dir.file("junk.png"), "definitely not a PNG");
  BackgroundLoader loader;
  cv::Mat rgb;
  std::string error, location;
  ASSERT_TRUE(loader.load_now(dir.file("a.png"), rgb, error)) << error;
  expect_rgb(rgb, 3, 3, {30, 20, 10});
  EXPECT_FALSE(loader.load_now(dir.file("junk.png"), rgb, error));
  EXPECT_NE(error.find("could not be decoded"), std::string::npos) << error;
  EXPECT_TRUE(loader.load_now("", rgb, error));
  EXPECT_TRUE(rgb.empty());
  EXPECT_FALSE(loader.take(rgb, error, location));  // load_now delivers nothing through take()

  loader.request(dir.file("a.png"));
  ASSERT_TRUE(loader.load_now(dir.file("a.png"), rgb, error));
  ASSERT_TRUE(wait_take(loader, rgb, error, location));  // the request still arrives
  EXPECT_EQ(location, dir.file("a.png"));
}

TEST(BackgroundLoader, CancelDropsWhatWasRequested) {
  ensure_gst();
  TempDir dir;
  write_gradient(dir.file("big.png"), 3000, 2000);
  BackgroundLoader loader;
  cv::Mat rgb;
  std::string error, location;
  loader.request(dir.file("big.png"));
  loader.cancel();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE(loader.take(rgb, error, location)) << location;
}

TEST(BackgroundLoader, DestructionWhileALoadRunsReturnsSoon) {
  ensure_gst();
  TempDir dir;
  write_gradient(dir.file("big.png"), 4000, 3000);
  for (int delay_ms : {0, 5, 30, 100}) {
    auto loader = std::make_unique<BackgroundLoader>();
    loader->request(dir.file("big.png"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    const auto t0 = Clock::now();
    loader.reset();
    const double s = seconds_since(t0);
    EXPECT_LT(s, 3.0) << "after " << delay_ms << " ms";
    std::printf("destroyed %d ms after the request, in %.1f ms\n", delay_ms, s * 1e3);
  }
  // One that never loaded anything.
  BackgroundLoader idle;
}
