/* Loads the element's background image off the streaming thread (see imageload.h for what is
 * read and the limits enforced).
 *
 * Usage: request() when background-location changes, take() at the start of each frame (swap the
 * image in when it returns true; until then the old background stays), load_now() where a
 * synchronous load is wanted (start()).
 *
 * Thread-safety: request(), take(), cancel() and load_now() may be called from any threads,
 * concurrently with each other (one internal mutex, never held while decoding). The destructor
 * must not run concurrently with any other member call (the owner destroys the loader when no
 * other thread uses it). Decoding happens on one worker thread per loader, started by the first
 * request(); at most one decode runs at a time. None of the calls except load_now() and the
 * destructor ever wait for a decode. Requires gst_init() before the first load. */
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include <opencv2/core.hpp>

class BackgroundLoader
{
public:
  /* `timeout_s`: how long one decode may take before it is abandoned with an error. */
  explicit BackgroundLoader (int timeout_s = 10);
  /* Stops the decode in progress, if any (it gives up within a few tens of milliseconds, plus
   * whatever the decoder's current call takes; never more than the timeout), and joins the
   * worker. A result not taken is dropped. */
  ~BackgroundLoader ();
  BackgroundLoader (const BackgroundLoader &) = delete;
  BackgroundLoader & operator= (const BackgroundLoader &) = delete;

  /* Starts loading `location` on the worker thread and returns at once. Supersedes every
   * earlier request: a decode still running for one is abandoned, a result of one not yet taken
   * is dropped, so take() only ever delivers the newest request's result. An empty location
   * asks for "no image": take() then returns true with an empty `rgb` and an empty `error`,
   * without any decode. */
  void request (const std::string & location);

  /* Never blocks. Returns true exactly once per finished request (the newest one): `location` is
   * the requested location, and either `rgb` holds the image (CV_8UC3, packed RGB) and `error`
   * is empty, or `rgb` is empty and `error` says why the load failed (naming the file). Returns
   * false, leaving the arguments alone, while the newest request is still loading or when
   * there is nothing new. */
  bool take (cv::Mat & rgb, std::string & error, std::string & location);

  /* Loads `location` synchronously in the calling thread (up to the timeout); true with the
   * image in `rgb`, or false with `error`. An empty location gives true and an empty `rgb`.
   * Independent of request()/take(): it neither supersedes nor delivers asynchronous
   * requests. */
  bool load_now (const std::string & location, cv::Mat & rgb, std::string & error);

  /* Supersedes every request like request() does, without a new one: nothing is delivered by
   * take() until the next request(). Returns at once. */
  void cancel ();

private:
  void run ();
  void supersede_locked ();

  const int timeout_s_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread worker_;
  /* Under mutex_: */
  bool stopping_ = false;
  bool has_job_ = false;        /* job_ waits for the worker */
  std::string job_;
  std::uint64_t generation_ = 0;        /* bumped by each request() and cancel() */
  bool ready_ = false;          /* a result for the newest request waits for take() */
  cv::Mat result_;
  std::string result_error_;
  std::string result_location_;
  /* Set (under mutex_) to make the decode in progress give up; read by the decode. */
  std::atomic < bool > abort_ { false };
};
