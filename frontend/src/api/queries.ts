// TanStack Query: the cache of the gateway's answers the pages read. A query's key names the
// question exactly (whose jobs, which page), so an answer can only land where it was asked for:
// a late answer for page 1 never shows on page 2.
import { QueryClient } from '@tanstack/react-query';

/** The app's query cache; one per app (and one per test, so that tests share nothing). */
export function createQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // The pages decide when to ask again (HistoryPage refreshes while jobs run); a failure
        // is shown as it is, not retried behind the user's back.
        retry: false,
        refetchOnWindowFocus: false,
      },
    },
  });
}

/** The keys of the cached questions. `token` keeps one user's answers from another's session. */
export const queryKeys = {
  jobs: (token: string | null, page: number, perPage: number) => ['jobs', token, page, perPage] as const,
};
