/*
 * dense.c — same-sized objects packed in 64 KiB blocks (see dense.h).
 */
#include "corral/dense.h"
#include "corral/stats.h"

#include <stdlib.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
/* a free object is poisoned but for its link word: AddressSanitizer then
 * sees a use after dense_put as it would after free() */
#define POISON(obj, size) \
	ASAN_POISON_MEMORY_REGION((char *)(obj) + sizeof(void *), (size) - sizeof(void *))
#define UNPOISON(obj, size) ASAN_UNPOISON_MEMORY_REGION((obj), (size))
#else
#define POISON(obj, size) ((void)(obj), (void)(size))
#define UNPOISON(obj, size) ((void)(obj), (void)(size))
#endif

void *dense_get(struct dense_pool *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->free == NULL) {
		/* the objects go on the free list last first, so that they
		 * come off it in address order */
		char *block = aligned_alloc(4096, DENSE_BLOCK);
		size_t n = block ? DENSE_BLOCK / p->size : 0;
		if (block)
			stats_add(STAT_herd_memory_bytes, DENSE_BLOCK);
		while (n-- > 0) {
			void **obj = (void **)(block + n * p->size);
			*obj = p->free;
			p->free = obj;
			POISON(obj, p->size);
		}
	}
	void **obj = p->free;
	if (obj) {
		p->free = *obj;
		UNPOISON(obj, p->size);
	}
	pthread_mutex_unlock(&p->lock);
	return obj;
}

void dense_put(struct dense_pool *p, void *obj)
{
	pthread_mutex_lock(&p->lock);
	*(void **)obj = p->free;
	p->free = obj;
	POISON(obj, p->size);
	pthread_mutex_unlock(&p->lock);
}
