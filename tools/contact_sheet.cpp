// unetseg-contact-sheet: tiles evenly spaced frames of a few videos side by side, one row per
// frame and one column per video, to see at a glance what a pipeline did to a clip.
//
//   unetseg-contact-sheet OUT.png VIDEO1 VIDEO2 [VIDEO3...] [--frames N] [--width PX]
//                         [--labels A,B,C]
//
// The videos should be the same clip in different forms (the input, the mask, the result), so
// row i shows the same moment in every column. Frames are counted by decoding (container frame
// counts are estimates), and the rows are spread over the shortest video.
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace {

const char *kUsage =
    "usage: unetseg-contact-sheet OUT.png VIDEO1 VIDEO2 [VIDEO3...] [--frames N] [--width PX]\n"
    "                             [--labels A,B,C]\n"
    "  --frames N   rows: N evenly spaced frames (default 5)\n"
    "  --width PX   width of one tile (default 320; the height keeps VIDEO1's aspect)\n"
    "  --labels     column labels, comma-separated (default: the file names)\n";

const int kGap = 4;        // between tiles, in pixels
const int kHeader = 26;    // the row of column labels on top
const cv::Scalar kBackground(40, 40, 40);
const cv::Scalar kText(255, 255, 255);

int fail(const std::string &message) {
  std::fprintf(stderr, "unetseg-contact-sheet: %s\n", message.c_str());
  return 1;
}

std::string stem(const std::string &path) {
  const std::string name = path.substr(path.find_last_of('/') + 1);
  return name.substr(0, name.find_last_of('.'));
}

// Decodes the whole video to count its frames; -1 if it cannot be opened.
int count_frames(const std::string &path) {
  cv::VideoCapture cap(path);
  if (!cap.isOpened())
    return -1;
  int n = 0;
  while (cap.grab())
    n++;
  return n;
}

// The frames of the video at the (ascending) indices, each resized to the tile size.
std::vector<cv::Mat> read_frames(const std::string &path, const std::vector<int> &indices,
                                 cv::Size tile) {
  std::vector<cv::Mat> frames;
  cv::VideoCapture cap(path);
  cv::Mat frame;
  for (int i = 0; frames.size() < indices.size() && cap.read(frame); i++) {
    if (i != indices[frames.size()])
      continue;
    if (frame.channels() == 1)
      cv::cvtColor(frame, frame, cv::COLOR_GRAY2BGR);
    cv::Mat small;
    cv::resize(frame, small, tile, 0, 0, cv::INTER_AREA);
    frames.push_back(small);
  }
  return frames;
}

// Text with a dark outline, readable on any picture.
void put_label(cv::Mat &image, const std::string &text, cv::Point origin) {
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  cv::putText(image, text, origin, font, 0.5, cv::Scalar(0, 0, 0), 3, cv::LINE_AA);
  cv::putText(image, text, origin, font, 0.5, kText, 1, cv::LINE_AA);
}

}  // namespace

int main(int argc, char **argv) {
  std::vector<std::string> paths, labels;
  int rows = 5, tile_width = 320;
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if ((arg == "--frames" || arg == "--width") && has_value) {
      (arg == "--frames" ? rows : tile_width) = std::atoi(argv[++i]);
    } else if (arg == "--labels" && has_value) {
      std::stringstream list(argv[++i]);
      for (std::string label; std::getline(list, label, ',');)
        labels.push_back(label);
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg.rfind("--", 0) == 0) {
      std::fputs(kUsage, stderr);
      return 2;
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.size() < 3 || rows < 1 || tile_width < 16) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string out = paths.front();
  paths.erase(paths.begin());
  if (labels.empty())
    for (const std::string &p : paths)
      labels.push_back(stem(p));
  if (labels.size() != paths.size())
    return fail("--labels names " + std::to_string(labels.size()) + " columns for " +
                std::to_string(paths.size()) + " videos");

  // Rows at the middle of N equal stretches of the shortest video.
  int frames = -1, first_frames = -1;
  for (const std::string &p : paths) {
    const int n = count_frames(p);
    if (n < 0)
      return fail("cannot open " + p);
    if (n == 0)
      return fail("no frames in " + p);
    if (first_frames < 0)
      first_frames = n;
    else if (n != first_frames)
      std::fprintf(stderr, "unetseg-contact-sheet: note: %s has %d frames, %s has %d\n",
                   p.c_str(), n, paths[0].c_str(), first_frames);
    frames = frames < 0 ? n : std::min(frames, n);
  }
  cv::VideoCapture first(paths[0]);
  const cv::Size first_size((int)first.get(cv::CAP_PROP_FRAME_WIDTH),
                            (int)first.get(cv::CAP_PROP_FRAME_HEIGHT));
  first.release();
  rows = std::min(rows, frames);
  std::vector<int> indices;
  for (int r = 0; r < rows; r++)
    indices.push_back((2 * r + 1) * frames / (2 * rows));

  const cv::Size tile(tile_width, std::max(1, tile_width * first_size.height /
                                                  std::max(1, first_size.width)));
  const int cols = (int)paths.size();
  cv::Mat sheet(kHeader + rows * (tile.height + kGap) + kGap, kGap + cols * (tile.width + kGap),
                CV_8UC3, kBackground);
  for (int c = 0; c < cols; c++) {
    const std::vector<cv::Mat> column = read_frames(paths[c], indices, tile);
    if ((int)column.size() != rows)
      return fail("could only read " + std::to_string(column.size()) + " of " +
                  std::to_string(rows) + " frames from " + paths[c]);
    const int x = kGap + c * (tile.width + kGap);
    put_label(sheet, labels[c], cv::Point(x + 4, kHeader - 8));
    for (int r = 0; r < rows; r++) {
      cv::Mat cell = sheet(cv::Rect(cv::Point(x, kHeader + r * (tile.height + kGap)), tile));
      column[r].copyTo(cell);
      if (c == 0)
        put_label(cell, "frame " + std::to_string(indices[r]), cv::Point(6, tile.height - 8));
    }
  }

  bool written = false;
  try {
    written = cv::imwrite(out, sheet);
  } catch (const cv::Exception &e) {  // e.g. an extension OpenCV has no writer for
    return fail("cannot write " + out + ": " + e.err);
  }
  if (!written)
    return fail("cannot write " + out);
  std::printf("%s: %d frames x %d videos (of %d frames each)\n", out.c_str(), rows, cols,
              frames);
  return 0;
}
