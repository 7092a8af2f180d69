// `express4` is Express 4 installed under an alias; Express 5's types describe what the test app uses.
declare module 'express4' {
  import express from 'express';
  export default express;
}
