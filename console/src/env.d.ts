// Stylesheets are bundled by Vite; a dynamic import of one resolves once it is applied.
declare module '*.css';
