import { Link } from 'react-router-dom';

/** Any address the app does not know. */
export default function NotFoundPage() {
  return (
    <main className="flex min-h-screen flex-col items-center justify-center gap-3 px-4 text-center">
      <h1 className="text-2xl font-bold">Page not found</h1>
      <Link to="/" className="font-semibold text-indigo-700 underline-offset-2 hover:underline">
        Go to the start page
      </Link>
    </main>
  );
}
