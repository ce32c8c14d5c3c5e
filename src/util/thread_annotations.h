// Clang's thread-safety annotations (-Wthread-safety), as macros that vanish
// for other compilers. The clang build step of scripts/test compiles with
// -Werror=thread-safety: a member marked GUARDED_BY(mu_) read without mu_
// held, or a function marked REQUIRES(mu_) called without it, fails the build.
// Use them through the annotated types of util/mutex.h.
#pragma once

#if defined(__clang__)
#define PAGERFS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define PAGERFS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) PAGERFS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY PAGERFS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) PAGERFS_THREAD_ANNOTATION(guarded_by(x))
#define ACQUIRED_BEFORE(...) PAGERFS_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define REQUIRES(...) PAGERFS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) PAGERFS_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) PAGERFS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) PAGERFS_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) PAGERFS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) PAGERFS_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define EXCLUDES(...) PAGERFS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS PAGERFS_THREAD_ANNOTATION(no_thread_safety_analysis)
