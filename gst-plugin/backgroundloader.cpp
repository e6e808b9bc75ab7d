#include "backgroundloader.h"

#include <system_error>
#include <utility>

#include "imageload.h"

BackgroundLoader::BackgroundLoader (int timeout_s):timeout_s_ (timeout_s)
{
}

BackgroundLoader::~BackgroundLoader ()
{
  {
    std::lock_guard < std::mutex > lock (mutex_);
    stopping_ = true;
    abort_ = true;
  }
  wake_.notify_all ();
  if (worker_.joinable ())
    worker_.join ();
}

/* Drops what earlier requests queued or produced and stops their decode. */
void
BackgroundLoader::supersede_locked ()
{
  ++generation_;
  has_job_ = false;
  job_.clear ();
  ready_ = false;
  result_.release ();
  result_error_.clear ();
  result_location_.clear ();
  abort_ = true;
}

void
BackgroundLoader::request (const std::string & location)
{
  {
    std::lock_guard < std::mutex > lock (mutex_);
    supersede_locked ();
    if (location.empty ()) {
      ready_ = true;            /* "no image" needs no decode */
      return;
    }
    if (!worker_.joinable ()) {
      try {
        worker_ = std::thread (&BackgroundLoader::run, this);
      } catch (const std::system_error & e) {
        ready_ = true;
        result_location_ = location;
        result_error_ = "image " + location + " cannot be loaded: no thread to load it on (" +
            e.what () + ")";
        return;
      }
    }
    job_ = location;
    has_job_ = true;
  }
  wake_.notify_one ();
}

bool
BackgroundLoader::take (cv::Mat & rgb, std::string & error, std::string & location)
{
  std::lock_guard < std::mutex > lock (mutex_);
  if (!ready_)
    return false;
  ready_ = false;
  rgb = std::move (result_);
  result_ = cv::Mat ();
  error = std::move (result_error_);
  result_error_.clear ();
  location = std::move (result_location_);
  result_location_.clear ();
  return true;
}

bool
BackgroundLoader::load_now (const std::string & location, cv::Mat & rgb, std::string & error)
{
  rgb.release ();
  error.clear ();
  if (location.empty ())
    return true;
  return unetseg_load_image_rgb (location, rgb, error, timeout_s_);
}

void
BackgroundLoader::cancel ()
{
  std::lock_guard < std::mutex > lock (mutex_);
  supersede_locked ();
}

void
BackgroundLoader::run ()
{
  std::unique_lock < std::mutex > lock (mutex_);
  for (;;) {
    wake_.wait (lock,[this] {
          return stopping_ || has_job_;
        });
    if (stopping_)
      return;
    const std::string location = std::move (job_);
    job_.clear ();
    has_job_ = false;
    const std::uint64_t generation = generation_;
    abort_ = false;
    lock.unlock ();

    cv::Mat rgb;
    std::string error;
    const bool ok = unetseg_load_image_rgb (location, rgb, error, timeout_s_, &abort_);

    lock.lock ();
    if (generation == generation_ && !stopping_) {
      ready_ = true;
      result_location_ = location;
      if (ok)
        result_ = std::move (rgb);
      else
        result_error_ = std::move (error);
    }
  }
}
