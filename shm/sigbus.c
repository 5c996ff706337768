/* SPDX-License-Identifier: MIT */
/* Absorbing SIGBUS from a truncated segment mapping: see sigbus.h. */
#include "sigbus.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARDS 32

struct guard {
	_Atomic(uintptr_t) base; /* 0: free */
	_Atomic size_t len;
	atomic_bool truncated;
};

static struct guard guards[GUARDS];
static _Atomic uint64_t absorbed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction previous;
static bool installed;

/* Chains to the handler that was there before ours, as the kernel would have. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	if (previous.sa_flags & SA_SIGINFO) {
		if (previous.sa_sigaction) {
			previous.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
		return;
	}
	/* SIG_DFL (or SIG_IGN, which the kernel does not honour for a fault):
	 * restore it and return; the faulting instruction runs again and the
	 * default action (core dump) happens where it would have anyway */
	signal(sig, SIG_DFL);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	int saved = errno;

	for (unsigned i = 0; i < GUARDS; i++) {
		uintptr_t b = atomic_load_explicit(&guards[i].base, memory_order_acquire);
		size_t len = atomic_load_explicit(&guards[i].len, memory_order_relaxed);
		long pg;
		uintptr_t page;

		if (!b || a < b || a >= b + len)
			continue;
		pg = sysconf(_SC_PAGESIZE);
		page = a & ~((uintptr_t)pg - 1);
		/* mmap is a plain system call: safe here in practice (JVMs and
		 * sanitizers do the same); the page now holds zeros and is ours */
		if (mmap((void *)page, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
			 0) == MAP_FAILED)
			break;
		atomic_store_explicit(&guards[i].truncated, true, memory_order_release);
		atomic_fetch_add_explicit(&absorbed, 1, memory_order_relaxed);
		errno = saved;
		return;
	}
	errno = saved;
	chain(sig, si, uc);
}

int atel__sigbus_guard(void *base, size_t len)
{
	int rc = -ENOSPC;

	pthread_mutex_lock(&lock);
	if (!installed) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &previous) != 0) {
			rc = -errno;
			goto out;
		}
		installed = true;
	}
	for (unsigned i = 0; i < GUARDS; i++) {
		if (atomic_load_explicit(&guards[i].base, memory_order_relaxed))
			continue;
		atomic_store_explicit(&guards[i].len, len, memory_order_relaxed);
		atomic_store_explicit(&guards[i].truncated, false, memory_order_relaxed);
		atomic_store_explicit(&guards[i].base, (uintptr_t)base, memory_order_release);
		rc = 0;
		break;
	}
out:
	pthread_mutex_unlock(&lock);
	return rc;
}

void atel__sigbus_unguard(void *base)
{
	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < GUARDS; i++)
		if (atomic_load_explicit(&guards[i].base, memory_order_relaxed) == (uintptr_t)base)
			atomic_store_explicit(&guards[i].base, 0, memory_order_release);
	pthread_mutex_unlock(&lock);
}

bool atel__sigbus_truncated(const void *base)
{
	for (unsigned i = 0; i < GUARDS; i++)
		if (atomic_load_explicit(&guards[i].base, memory_order_acquire) == (uintptr_t)base)
			return atomic_load_explicit(&guards[i].truncated, memory_order_acquire);
	return false;
}

uint64_t atel__sigbus_absorbed(void)
{
	return atomic_load_explicit(&absorbed, memory_order_relaxed);
}
