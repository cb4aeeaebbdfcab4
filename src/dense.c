/*
 * dense.c — same-sized objects packed in 64 KiB blocks (see dense.h).
 */
#include "corral/dense.h"

#include <stdlib.h>

#define DENSE_BLOCK (64 * 1024)

void *dense_get(struct dense_pool *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->free == NULL) {
		/* the objects go on the free list last first, so that they
		 * come off it in address order */
		char *block = aligned_alloc(4096, DENSE_BLOCK);
		size_t n = block ? DENSE_BLOCK / p->size : 0;
		while (n-- > 0) {
			void **obj = (void **)(block + n * p->size);
			*obj = p->free;
			p->free = obj;
		}
	}
	void **obj = p->free;
	if (obj)
		p->free = *obj;
	pthread_mutex_unlock(&p->lock);
	return obj;
}

void dense_put(struct dense_pool *p, void *obj)
{
	pthread_mutex_lock(&p->lock);
	*(void **)obj = p->free;
	p->free = obj;
	pthread_mutex_unlock(&p->lock);
}
